module Mpo.Core.Tests.ContractionTests
