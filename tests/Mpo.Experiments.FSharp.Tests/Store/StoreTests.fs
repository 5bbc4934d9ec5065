/// The result store under real concurrent writer processes, and a corrupted entry.
module Mpo.Experiments.Tests.Store.StoreTests

open System
open System.Diagnostics
open System.IO
open Expecto
open Mpo.Experiments.Store.ResultStore
open Mpo.Experiments.Tests.Support
open Mpo.Experiments.Tests.Store

[<Tests>]
let tests =
    testList "Store" [
        test "six writer processes at once: every record whole, none lost, a finished result never replaced" {
            inTempDir (fun dir ->
                let store = Store(Path.Combine(dir, "store"))
                let writers, count = 6, 40
                let testDll = Reflection.Assembly.GetEntryAssembly().Location
                let processes =
                    [ for w in 0 .. writers - 1 ->
                        let psi = ProcessStartInfo("dotnet", [ testDll; "--store-writer"; store.Folder; string w; string count ],
                                                   RedirectStandardOutput = true, RedirectStandardError = true)
                        Process.Start psi ]
                // read while they write: a reader never sees a torn record, and a finished shared record once seen stays
                let firstFinished = Collections.Generic.Dictionary<string, string>()
                let mutable reads = 0
                while processes |> List.exists (fun p -> not p.HasExited) do
                    let c = store.Load()
                    Expect.isEmpty c.Corrupt "no half-written record is ever visible"
                    for id in StoreWriter.sharedIds do
                        match Map.tryFind id c.Records with
                        | Some r when r.Status = Finished && not (firstFinished.ContainsKey id) ->
                            firstFinished.[id] <- File.ReadAllText(store.RecordFile id)
                        | _ -> ()
                    reads <- reads + 1
                for p in processes do
                    p.WaitForExit()
                    Expect.equal p.ExitCode 0 (p.StandardError.ReadToEnd())
                let c = store.Load()
                Expect.isEmpty c.Corrupt "every file reads"
                Expect.equal c.Records.Count (writers * count + StoreWriter.sharedIds.Length) "every writer's every record, and the shared ones"
                for w in 0 .. writers - 1 do
                    for i in 0 .. count - 1 do
                        let r = c.Records.[sprintf "own-%d-%d" w i]
                        Expect.equal r.Metrics.["i"] (float i) "the record its writer wrote"
                        Expect.equal r.Series.["s"] [ 1.0; 2.0 ] "series kept"
                for id in StoreWriter.sharedIds do
                    Expect.equal c.Records.[id].Status Finished $"{id}: finished results were written, so a finished one stays"
                    match firstFinished.TryGetValue id with
                    | true, seen -> Expect.equal (File.ReadAllText(store.RecordFile id)) seen $"{id}: the first finished record is the one kept"
                    | _ -> ()
                Expect.isGreaterThan reads 0 "the reader ran during the writes"
                let leftovers = Directory.GetFiles(store.TrialsFolder) |> Array.filter (fun f -> f.EndsWith ".tmp")
                Expect.isEmpty leftovers "no temporary files left")
        }

        test "a corrupted entry is reported naming the file, and never overwritten" {
            inTempDir (fun dir ->
                let store = Store(Path.Combine(dir, "store"))
                store.Write(StoreWriter.record "good" Finished 0 0) |> ignore
                store.Write(StoreWriter.record "torn" Failed 0 0) |> ignore
                let torn = store.RecordFile "torn"
                File.WriteAllText(torn, "{ \"format\": \"mpo-trial-record/1\", \"trial_id\": \"torn\", \"sta")
                let c = store.Load()
                Expect.equal (c.Corrupt |> List.map fst) [ torn ] "the file is listed, not dropped"
                Expect.isTrue (c.Records.ContainsKey "good") "the others read"
                Expect.throwsT<CorruptStoreException> (fun () -> store.Write(StoreWriter.record "torn" Finished 1 0) |> ignore) "writing over it refuses"
                let message = (try store.LoadStrict() |> ignore; "" with :? CorruptStoreException as e -> e.Message)
                Expect.stringContains message torn "the message names the file"
                Expect.stringContains (File.ReadAllText torn) "\"sta" "the file is as it was")
        }
    ]
