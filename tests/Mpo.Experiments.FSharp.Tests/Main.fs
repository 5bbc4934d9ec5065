module Mpo.Experiments.Tests.Main

open System.Reflection
open Expecto

[<EntryPoint>]
let main argv =
    Mpo.Native.TorchRuntime.EnsureLoaded()
    match Impl.testFromAssembly (Assembly.GetExecutingAssembly()) with
    | Some tests -> Mpo.Tests.Runner.run argv tests
    | None -> eprintfn "no tests found"; 1
