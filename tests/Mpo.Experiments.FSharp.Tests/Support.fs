/// Running the `mpo` program as a user would, in a scratch folder.
module Mpo.Experiments.Tests.Support

open System
open System.Diagnostics
open System.IO

/// The built mpo.dll beside this test binary (the project reference copies it).
let mpoDll = Path.Combine(AppContext.BaseDirectory, "mpo.dll")

type Run = { Code: int; Out: string; Err: string }

/// Runs `dotnet mpo.dll args` in <c>dir</c> with CI set (no progress bars) and the extra environment variables
/// <c>env</c> (a null value removes one), and returns exit code and output.
let mpoWithin (seconds: int) (env: (string * string) list) (dir: string) (args: string list) =
    let psi = ProcessStartInfo("dotnet", mpoDll :: args, WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true)
    psi.Environment.["CI"] <- "true"
    for k, v in env do
        if isNull v then psi.Environment.Remove k |> ignore else psi.Environment.[k] <- v
    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit(seconds * 1000)) then p.Kill true; failwith $"mpo {args} did not finish in {seconds} s"
    { Code = p.ExitCode; Out = out.Result; Err = err.Result }

/// mpoWithin five minutes (generous: the machine may be shared with other work).
let mpoWith (env: (string * string) list) (dir: string) (args: string list) = mpoWithin 300 env dir args

/// Runs `dotnet mpo.dll args` in <c>dir</c> with CI set (no progress bars) and returns exit code and output.
let mpo (dir: string) (args: string list) = mpoWith [] dir args

/// A scratch folder, deleted afterwards.
let inTempDir (action: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("mpo-cli-")
    try action dir.FullName finally dir.Delete true

let repoFile = Mpo.Tests.RepoFiles.find

/// A trial of `model` on spam whose "method" is the JSON text given, read as a spec's trial is.
let trialWithMethod (model: string) (methodJson: string) =
    Mpo.Experiments.Specs.TrialJson.readTrial "" (Text.Json.Nodes.JsonNode.Parse(sprintf """{ "model": "%s", "task": "spam", "method": %s }""" model methodJson))

/// `mpo finetune`'s method from its flags, through the command's own reader.
let finetuneMethod (args: string list) =
    let parser = Argu.ArgumentParser.Create<Mpo.Experiments.Cli.Arguments.FinetuneArgs>(programName = "mpo finetune")
    Mpo.Experiments.Cli.FinetuneCommand.methodOf (parser.Parse(Array.ofList args))

/// Asserts that `flag` given to `mpo finetune --method <methodName>` is refused, the message naming the flag and the method.
let flagRefused (methodName: string) (flag: string list) =
    let e = Expecto.Expect.throwsC (fun () -> finetuneMethod ([ "--method"; methodName ] @ flag) |> ignore) id
    Expecto.Expect.stringContains e.Message (List.head flag) "names the flag"
    Expecto.Expect.stringContains e.Message ("not " + methodName) "and the method"

