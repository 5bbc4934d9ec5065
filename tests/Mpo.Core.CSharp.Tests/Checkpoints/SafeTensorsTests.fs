module Mpo.Core.Tests.SafeTensorsTests
