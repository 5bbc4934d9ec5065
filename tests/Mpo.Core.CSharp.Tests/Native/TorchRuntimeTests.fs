module Mpo.Core.Tests.TorchRuntimeTests
