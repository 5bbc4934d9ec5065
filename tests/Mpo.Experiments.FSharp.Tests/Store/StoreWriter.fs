/// A store writer process for the concurrency test: `Mpo.Experiments.FSharp.Tests.dll --store-writer DIR W N` writes N
/// records of its own and races the other writers on five shared trial IDs with alternating finished/failed results.
module Mpo.Experiments.Tests.Store.StoreWriter

open System
open Mpo.Experiments.Specs
open Mpo.Experiments.Store.ResultStore

let sharedIds = [ for k in 0 .. 4 -> sprintf "shared-%d" k ]

let record (id: string) (status: Status) (writer: int) (i: int) =
    { TrialId = id; Status = status; Trial = TrialJson.writeTrial (Trial.create "tiny-bert" "spam"); Seed = int64 writer
      Code = { Commit = "test"; Dirty = false; Note = Some "store concurrency test" }
      Metrics = Map.ofList [ "writer", float writer; "i", float i ]; Series = Map.ofList [ "s", [ 1.0; 2.0 ] ]
      Labels = Map.ofList [ "writer", string writer ]; WallSeconds = 0.0
      StartedAt = DateTimeOffset.Now; FinishedAt = DateTimeOffset.Now; Host = Environment.MachineName
      Error = (if status = Failed then Some "synthetic failure" else None) }

let run (dir: string) (writer: int) (count: int) =
    let store = Store dir
    for i in 0 .. count - 1 do
        store.Write(record (sprintf "own-%d-%d" writer i) Finished writer i) |> ignore
        let shared = sharedIds.[(writer + i) % sharedIds.Length]
        store.Write(record shared (if (writer + i) % 2 = 0 then Finished else Failed) writer i) |> ignore
    0
