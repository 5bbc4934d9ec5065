module Mpo.Core.Tests.MpoEmbeddingTests
