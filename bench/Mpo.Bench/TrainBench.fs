/// Training-step throughput and memory of the bundled tiny models against the same model in Debian's PyTorch 1.13
/// (bench/pytorch/train_step.py), side by side in one run (issue 3 §8: target ≥ 1.0× PyTorch; memory flat).
/// Both sides: random ids of the same shape, dropout as configured, AdamW (lr 1e-3, HF no-decay groups), clipping
/// at 1.0, the same thread count.
module Mpo.Bench.TrainBench

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open TorchSharp
open Mpo.Models
open Mpo.Training
open Mpo.Bench.Report

type Result =
    { Model: string
      Batch: int
      Sequence: int
      Steps: int
      MpoTokensPerSecond: float
      MpoPeakMiB: float
      /// RSS after the warm-up and at the end: equal within noise when nothing accumulates per step.
      MpoRssAfterWarmupMiB: float
      MpoRssEndMiB: float
      TorchTokensPerSecond: float option
      TorchPeakMiB: float option
      TorchNote: string }

let private repoRoot () =
    let rec up (d: DirectoryInfo) =
        if isNull d then failwith "cannot find models/ above the benchmark"
        elif Directory.Exists(Path.Combine(d.FullName, "models")) then d.FullName
        else up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

/// Our side: the Trainer on the model built from config.json (random init), timed from the end of the warm-up.
let private mpoSide (configPath: string) (batch: int) (seq: int) (warmup: int) (steps: int) =
    let json = JsonNode.Parse(File.ReadAllText configPath).AsObject()
    let config = ModelRegistry.ReadConfig(json, configPath)
    let architecture = json["architectures"].[0].GetValue<string>()
    torch.manual_seed 42L |> ignore
    use model = ModelRegistry.Create(config, architecture)
    use g = new torch.Generator(7UL)
    use ids = torch.randint(0L, int64 config.VocabSize, [| int64 batch; int64 seq |], generator = g)
    use labels =
        if config.ModelType = "bert" then torch.where(torch.rand([| int64 batch; int64 seq |], generator = g).lt(torch.tensor 0.15), ids, torch.full_like(ids, -100L))
        else ids.alias()
    let inputs () = ModelInputs(ids, Labels = labels)   // T5 shifts the labels into its decoder input
    let options = TrainerOptions(MaxSteps = int64 (warmup + steps), LearningRate = 1e-3, WeightDecay = 0.01, MaxGradNorm = 1.0,
                                 WarmupSteps = 1L, LoggingSteps = int64 (warmup + steps), Seed = Nullable 42L)
    let source = BatchSource.Create(1, fun _ _ -> ())
    let clock = Stopwatch()
    let mutable rssWarm = nan
    let progress =
        { new IProgress<TrainingProgress> with
            member _.Report p =
                if p.Event = TrainingEvent.Step && p.Step = int64 warmup then
                    rssWarm <- defaultArg (Memory.rssMiB ()) nan
                    Memory.resetPeak () |> ignore
                    clock.Restart() }
    use trainer = new Trainer<unit>(model, options, source, (fun () -> LossOutput((model.forward (inputs ())).Loss)), progress = progress)
    trainer.Run() |> ignore
    let seconds = clock.Elapsed.TotalSeconds
    float (batch * seq * steps) / seconds, defaultArg (Memory.peakMiB ()) nan, rssWarm, defaultArg (Memory.rssMiB ()) nan

/// The PyTorch side, as a subprocess with the same thread count; None with the reason when it cannot run.
let private torchSide (configPath: string) (batch: int) (seq: int) (warmup: int) (steps: int) =
    let script = Path.Combine(repoRoot (), "bench", "pytorch", "train_step.py")
    if not (File.Exists "/usr/bin/python3") then None, "no /usr/bin/python3"
    else
        let args = [ script; "--config"; configPath; "--batch"; string batch; "--seq"; string seq; "--steps"; string steps
                     "--warmup"; string warmup; "--threads"; string (torch.get_num_threads ()) ]
        let psi = ProcessStartInfo("/usr/bin/python3", args, RedirectStandardOutput = true, RedirectStandardError = true)
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEnd()
        let err = p.StandardError.ReadToEnd()
        p.WaitForExit()
        if p.ExitCode <> 0 then
            None, (if err.Contains "No module named 'torch'" then "Debian python3-torch not installed" else "PyTorch side failed: " + (err.Trim().Split('\n') |> Array.last))
        else
            use d = JsonDocument.Parse(out.Trim().Split('\n') |> Array.last)
            Some (d.RootElement.GetProperty("tokens_per_second").GetDouble(), d.RootElement.GetProperty("peak_rss_mib").GetDouble()),
            d.RootElement.GetProperty("framework").GetString()

let run (opts: Options) =
    let root = repoRoot ()
    let warmup, steps = if opts.Quick then 2, 3 else 5, 30
    [ for name, batch, seq in [ "tiny-gpt2", 16, 128; "tiny-bert", 16, 128; "tiny-t5", 32, 128 ] do
        let config = Path.Combine(root, "models", name, "config.json")
        let batch = if opts.Quick then 2 else batch
        let tps, peak, warm, endRss = mpoSide config batch seq warmup steps
        let torchResult, note = torchSide config batch seq warmup steps
        yield { Model = name; Batch = batch; Sequence = seq; Steps = steps
                MpoTokensPerSecond = tps; MpoPeakMiB = peak; MpoRssAfterWarmupMiB = warm; MpoRssEndMiB = endRss
                TorchTokensPerSecond = torchResult |> Option.map fst; TorchPeakMiB = torchResult |> Option.map snd; TorchNote = note } ]

let markdown (quick: bool) (results: Result list) =
    let rows =
        [ for r in results ->
            let ratio = r.TorchTokensPerSecond |> Option.map (fun t -> sprintf "%.2f×" (r.MpoTokensPerSecond / t)) |> Option.defaultValue "—"
            [ r.Model; sprintf "%d×%d" r.Batch r.Sequence; sprintf "%.0f" r.MpoTokensPerSecond
              (r.TorchTokensPerSecond |> Option.map (sprintf "%.0f") |> Option.defaultValue r.TorchNote); ratio
              sprintf "%.0f" r.MpoPeakMiB; (r.TorchPeakMiB |> Option.map (sprintf "%.0f") |> Option.defaultValue "—")
              sprintf "%.0f → %.0f" r.MpoRssAfterWarmupMiB r.MpoRssEndMiB ] ]
    "### Training step: Mpo vs PyTorch (tokens/s, higher is better)\n\n"
    + table [ "model", Left; "batch", Left; "Mpo tok/s", Right; "PyTorch tok/s", Right; "Mpo / PyTorch", Right
              "Mpo peak MiB", Right; "PyTorch peak MiB", Right; "Mpo RSS warm → end", Right ] rows
    + (if quick then "\n\n_Quick mode: 3 steps of batch 2; not a measurement._" else "")

/// One sample of a long run: resident set and live tensors after an update.
type MemorySample = { Step: int64; RssMiB: float; LiveTensors: int64 }

/// Issue 3 §8 "memory stays flat over 1,000 steps": tiny-t5 (the fastest to train) for 1,000 updates, sampled every
/// 50. Flat = the live-tensor count does not grow and the RSS settles instead of climbing with the step count.
let memoryTrace (opts: Options) =
    let root = repoRoot ()
    let configPath = Path.Combine(root, "models", "tiny-t5", "config.json")
    let json = JsonNode.Parse(File.ReadAllText configPath).AsObject()
    let config = ModelRegistry.ReadConfig(json, configPath)
    torch.manual_seed 42L |> ignore
    use model = ModelRegistry.Create(config, json["architectures"].[0].GetValue<string>())
    let batch, steps, every = (if opts.Quick then 2, 20, 5 else 8, 1000, 50)
    use g = new torch.Generator(7UL)
    use ids = torch.randint(0L, int64 config.VocabSize, [| int64 batch; 128L |], generator = g)
    let options = TrainerOptions(MaxSteps = int64 steps, LearningRate = 1e-3, WeightDecay = 0.01, WarmupSteps = 10L,
                                 LoggingSteps = int64 steps, Seed = Nullable 42L)
    let samples = ResizeArray<MemorySample>()
    let progress =
        { new IProgress<TrainingProgress> with
            member _.Report p =
                if p.Event = TrainingEvent.Step && p.Step % int64 every = 0L then
                    samples.Add { Step = p.Step; RssMiB = defaultArg (Memory.rssMiB ()) nan
                                  LiveTensors = DisposeScopeManager.Statistics.ThreadTotalLiveCount } }
    use trainer = new Trainer<unit>(model, options, BatchSource.Create(1, fun _ _ -> ()),
                                    (fun () -> LossOutput((model.forward (ModelInputs(ids, Labels = ids))).Loss)), progress = progress)
    trainer.Run() |> ignore
    List.ofSeq samples

let memoryMarkdown (quick: bool) (samples: MemorySample list) =
    let rows = [ for s in samples -> [ string s.Step; sprintf "%.0f" s.RssMiB; string s.LiveTensors ] ]
    "### Memory over a long run (tiny-t5, batch 8×128)\n\n"
    + table [ "update", Right; "RSS MiB", Right; "live tensors", Right ] rows
    + (if quick then "\n\n_Quick mode: 20 updates of batch 2; not a measurement._" else "")
