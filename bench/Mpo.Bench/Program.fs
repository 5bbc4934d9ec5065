/// mpo-bench: the benchmarks of issue §7. Markdown on stdout (paste into the README with the machine named),
/// the same tables and the raw numbers under --out.
module Mpo.Bench.Program

open System
open System.Diagnostics
open Argu
open Mpo.Native
open Mpo.Bench.Report

type BenchArgs =
    | Quick
    | Out of dir: string

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Quick -> "small shapes and few repetitions: finishes in well under a minute (for CI)."
            | Out _ -> "folder for the tables (.md) and raw numbers (.json); default out/bench."

[<RequireSubcommand>]
type Args =
    | [<CliPrefix(CliPrefix.None); SubCommand>] Decompose of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Linear of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] All of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Crossover of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Train of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Memory of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Encode of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Tune of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Moe of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Table2 of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Cp of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Lfa of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None); SubCommand>] Squeeze of ParseResults<BenchArgs>

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Decompose _ -> "decomposition of every BERT-base matrix against the floor of raw SVDs."
            | Linear _ -> "MpoLinear forward+backward against dense Linear, every path, with peak memory."
            | All _ -> "decompose, then linear."
            | Memory _ -> "resident memory and live tensors over 1,000 training updates of tiny-t5."
            | Encode _ -> "encoding with the imported all-MiniLM-L6-v2 against ONNX Runtime on the same graph, side by side."
            | Tune _ -> "MPO-ization of a BERT-base-sized model: time and peak memory of the tuner, against holding every float64 copy."
            | Train _ -> "training step of the bundled tiny models against the same models in Debian's PyTorch, side by side."
            | Crossover _ -> "calibration sweep: where factorized stops beating reconstruct, and fitted cost constants."
            | Moe _ -> "MoE layer forward+backward: MPOE against dense-expert Switch at 4-64 experts and the base FFN."
            | Cp _ -> "CP-ALS per sweep on a 30522×384 embedding as a 5-way tensor, ranks 50-400, against its GEMM floor."
            | Lfa _ -> "training step of MPOP's lightweight fine-tuning and LoRA against full fine-tuning of the same BERT-base: time, peak RSS, AdamW state."
            | Squeeze _ -> "one cut of MPOP's dimension squeezing on BERT-base: choosing the bond, truncating the layer, refreshing AdamW, against one LFA training step."
            | Table2 _ -> "MPOP Table 2: FLOPs per token (cost model) and measured lookup and x·Wᵀ time of SVD, MPO, CP and Tucker at matched parameters."

let private section (opts: Options) (machine: Machine.Machine) name (run: Options -> 'R list) (markdown: bool -> 'R list -> string) =
    let sw = Stopwatch.StartNew()
    let settledBefore = Measure.Settle.waitedSeconds ()
    let results = run opts
    let md = markdown opts.Quick results
    let wall = sw.Elapsed.TotalSeconds
    let mode = if opts.Quick then "quick" else "full"
    let settle = Measure.Settle.waitedSeconds () - settledBefore
    let text = md + $"\n\n_{name}: {mode} mode, {wall:F0} s wall time, of which {settle:F0} s waiting for the machine to settle._\n"
    printfn "%s\n" text
    let mdPath, jsonPath =
        save opts name (Machine.toMarkdown machine + "\n\n" + text)
            {| machine = machine; mode = mode; wallSeconds = wall; settleSeconds = settle; results = results |}
    eprintfn "wrote %s and %s" mdPath jsonPath

[<EntryPoint>]
let main argv =
    let parser = ArgumentParser.Create<Args>(programName = "mpo-bench")
    try
        let args = parser.ParseCommandLine(argv)
        let command = args.GetSubCommand()
        let sub =
            match command with
            | Decompose a | Linear a | All a | Crossover a | Train a | Memory a | Encode a | Tune a | Moe a | Table2 a | Cp a | Lfa a | Squeeze a -> a
        let opts =
            { Quick = sub.Contains BenchArgs.Quick
              OutDir = sub.GetResult(BenchArgs.Out, defaultValue = "out/bench")
              Interactive = interactive () }
        TorchRuntime.EnsureLoaded()
        let machine = Machine.describe ()
        Measure.Settle.calibrate ()
        printfn "## mpo-bench\n\n%s\n" (Machine.toMarkdown machine)
        let sw = Stopwatch.StartNew()
        match command with
        | Decompose _ -> section opts machine "decompose" DecomposeBench.run DecomposeBench.markdown
        | Linear _ -> section opts machine "linear" LinearBench.run LinearBench.markdown
        | Crossover _ -> section opts machine "crossover" CrossoverBench.run CrossoverBench.markdown
        | Train _ -> section opts machine "train" TrainBench.run TrainBench.markdown
        | Memory _ -> section opts machine "memory" TrainBench.memoryTrace TrainBench.memoryMarkdown
        | Encode _ -> section opts machine "encode" EncodeBench.run EncodeBench.markdown
        | Tune _ -> section opts machine "tune" TuneBench.run TuneBench.markdown
        | Moe _ -> section opts machine "moe" MoeBench.run MoeBench.markdown
        | Table2 _ -> section opts machine "table2" Table2Bench.run Table2Bench.markdown
        | Cp _ -> section opts machine "cp" CpBench.run CpBench.markdown
        | Lfa _ -> section opts machine "lfa" LfaBench.run LfaBench.markdown
        | Squeeze _ -> section opts machine "squeeze" SqueezeBench.run SqueezeBench.markdown
        | All _ ->
            section opts machine "decompose" DecomposeBench.run DecomposeBench.markdown
            section opts machine "linear" LinearBench.run LinearBench.markdown
        printfn "_Total wall time: %.0f s._" sw.Elapsed.TotalSeconds
        0
    with
    | :? ArguParseException as e ->
        eprintfn "%s" e.Message
        if e.ErrorCode = ErrorCode.HelpText then 0 else 2
    | :? TorchLoadException as e ->
        eprintfn "%s" e.Message
        3
