module Mpo.Core.Tests.FactorizationTests
