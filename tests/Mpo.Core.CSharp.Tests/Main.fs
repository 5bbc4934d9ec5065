module Mpo.Core.Tests.Main

open System.Reflection
open Expecto

/// Every `[<Tests>]` value in this assembly; each test file owns one concept of src/Mpo.Core.CSharp.
[<EntryPoint>]
let main argv =
    match Impl.testFromAssembly (Assembly.GetExecutingAssembly()) with
    | Some tests -> Mpo.Tests.Runner.run argv tests
    | None -> eprintfn "no tests found"; 1
