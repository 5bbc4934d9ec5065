module Mpo.Core.Tests.MpoLinearTests
