// MPOP Tables 3 and 4, the #Pr / #To columns (trained / total parameters, millions): every row whose model Mpo
// builds, counted from the Hugging Face configuration alone (the model on libtorch's meta device, the MPO tuner
// swapping in shape-only MPO layers) by the same function that counts live models (Tuning.ParameterCounting), as
// `mpo count --config C --mpo T` does for one row. The tables' GLUE scores need the fine-tuning methods (LFA on GLUE),
// which are not runnable here yet: see scripts/README.md.
//   ./scripts/fsi scripts/mpop-parameters.fsx                 full mode: every row (Tables 3 and 4)
//   MPO_QUICK=1 ./scripts/fsi scripts/mpop-parameters.fsx     quick mode (CI): the ALBERT rows of Table 3 only
// Shapes only, no weights: nothing is downloaded and a user's checkpoint is not needed (the configurations are in
// data/configs, the tuner files in data/configs/mpop).
#load "references.fsx"

open System.IO
open System.Text.Json.Nodes
open Mpo.Models
open Mpo.Tuning
open Mpo.Experiments.Reports

let configs = Path.Combine(__SOURCE_DIRECTORY__, "..", "data", "configs")
let model name = Path.Combine(configs, "models", name)
let tuner (name: string) = if name.EndsWith ".json" then Path.Combine(configs, "mpop", name) else name

/// (table, paper's row and #Pr / #To, configuration, tuner preset or file)
let rows =
    [ "3", "ALBERT_rep 11.6 / 11.6", "albert-base-v2.json", None
      "3", "MPOP_full 12.7 / 12.7", "albert-base-v2.json", Some "mpop-albert"   // central tensors trained: see below
      "3", "MPOP_full+LFA 1.2 / 12.7", "albert-base-v2.json", Some "mpop-albert"
      "3", "MPOP 1.1 / 9 (code's attention shape, caps 240 / 256)", "albert-base-v2.json", Some "albert-code-emb240-ffn256.json"
      "4", "BERT 110 / 110", "bert-base-uncased.json", None
      "4", "MPOP_B 7.7 / 70.4 (MPOE repository's shapes, full bonds)", "bert-base-uncased.json", Some "mpop-bert"
      "4", "DistilBERT 66 / 66", "distilbert-base-uncased.json", None
      "4", "MPOP_D 4.0 / 43.4 (MPOE repository's shapes, full bonds)", "distilbert-base-uncased.json", Some "mpop-bert" ]
    |> List.mapi (fun i r -> i, r)
    |> List.filter (fun (_, (table, _, _, _)) -> not References.quick || table = "3")

let millions (n: int64) = (float n / 1e6).ToString("F1", System.Globalization.CultureInfo.InvariantCulture)

let counted =
    [ for i, (table, paper, config, preset) in rows ->
        let c = ModelRegistry.ReadConfigFile(model config)
        let tuners: IStructuralTuner list =
            match preset with
            | None -> []
            | Some p ->
                // MPOP_full trains the central tensors too (no LFA): the same decomposition with freeze_central off
                let mpoConfig =
                    if i = 1 then MpoTunerConfig.FromJson(JsonObject(dict [ "preset", JsonValue.Create p :> JsonNode; "freeze_central", JsonValue.Create false ]), "MPOP_full")
                    else MpoTunerConfig.Load(tuner p)
                [ MpoTuner(mpoConfig) ]
        let count = ParameterCounting.FromConfig(c, ParameterCounting.CountedArchitecture c, tuners)
        [ table; paper; config; defaultArg preset "–"
          Tables.int64s count.Parameters.Trainable; Tables.int64s count.Parameters.Total
          millions count.Parameters.Trainable + " / " + millions count.Parameters.Total ] ]

printfn "%s" (Tables.markdown [ "table"; "paper's row (#Pr / #To, M)"; "configuration"; "tuner"; "trainable"; "all"; "here (M)" ] counted)
printfn "\nMobileBERT (Table 4's MobileBERT and MPOP_M) is not a family Mpo builds: `mpo count` refuses its configuration."
printfn "The BERT-family MPOP rows need truncation settings MPOP did not release; README \"MPO as a tuner\" has the search."
