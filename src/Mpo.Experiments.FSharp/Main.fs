module Mpo.Experiments.Main
[<EntryPoint>]
let main argv = 0
