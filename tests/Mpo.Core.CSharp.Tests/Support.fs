module Mpo.Core.Tests.Support
