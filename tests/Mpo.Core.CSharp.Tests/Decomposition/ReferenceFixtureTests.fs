module Mpo.Core.Tests.ReferenceFixtureTests
