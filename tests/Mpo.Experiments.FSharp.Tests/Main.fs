module Mpo.Experiments.Tests.Main

open System.Reflection
open Expecto

[<EntryPoint>]
let main argv =
    match argv with
    | [| "--store-writer"; dir; writer; count |] -> exit (Mpo.Experiments.Tests.Store.StoreWriter.run dir (int writer) (int count))
    | _ -> ()
    Mpo.Native.TorchRuntime.EnsureLoaded()
    match Impl.testFromAssembly (Assembly.GetExecutingAssembly()) with
    | Some tests -> Mpo.Tests.Runner.run argv tests
    | None -> eprintfn "no tests found"; 1
