module Mpo.Core.Tests.DecompositionTests
