module Mpo.Core.Tests.CostModelTests
