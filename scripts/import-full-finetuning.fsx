// Converts the committed full fine-tuning baselines (results/full-finetuning/results.json, written by `mpo finetune`
// at commit dfe8d04, before the result store existed) into result-store records, honestly labelled: each record's
// code version says it was imported and from where. `mpo finetune --out results/full-finetuning` then finds every
// trial finished in results/full-finetuning/store and regenerates the table, results.json and figure from it.
//   ./scripts/fsi scripts/import-full-finetuning.fsx        (quick mode, MPO_QUICK=1: into a temporary store)
#load "references.fsx"
open System
open System.IO
open Mpo.Experiments.FineTuning
open Mpo.Experiments.Store.ResultStore

let folder = Path.Combine(__SOURCE_DIRECTORY__, "..", "results", "full-finetuning")
let target = if References.quick then References.outputFolder "import-full-finetuning" else Path.Combine(folder, "store")
let records =
    Baselines.importResults (Path.Combine(folder, "results.json"))
        "imported from results/full-finetuning/results.json at commit dfe8d04 (made by mpo finetune before the result store existed; host and start time not recorded)"
        (DateTimeOffset.Parse("2026-11-23T19:51:34+00:00", Globalization.CultureInfo.InvariantCulture))
let store = Store target
for r in records do
    match store.Write r with
    | Written -> printfn "stored %s" r.TrialId
    | KeptFinished existing -> printfn "kept %s (already finished in the store: %s)" r.TrialId (defaultArg existing.Code.Note existing.Code.Commit)
printfn "%d records in %s" records.Length store.TrialsFolder
