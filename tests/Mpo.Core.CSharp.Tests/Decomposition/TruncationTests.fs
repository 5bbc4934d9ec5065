module Mpo.Core.Tests.TruncationTests
