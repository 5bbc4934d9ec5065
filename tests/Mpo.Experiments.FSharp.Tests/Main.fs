module Mpo.Experiments.Tests.Main
open Expecto
[<EntryPoint>]
let main argv = Mpo.Tests.Runner.run argv (testList "experiments" [ testCase "placeholder" (fun () -> Expect.equal 1 1 "x") ])
