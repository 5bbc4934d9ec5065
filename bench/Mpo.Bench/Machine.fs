/// What the numbers were measured on: benchmark tables mean nothing without the machine beside them.
module Mpo.Bench.Machine

open System
open System.IO
open System.Reflection
open System.Runtime.InteropServices
open TorchSharp

type Machine =
    { Cpu: string
      LogicalCores: int
      TorchThreads: int
      TorchInteropThreads: int
      TorchSharp: string
      Os: string
      Runtime: string
      MemoryGiB: float }

/// First "model name" of /proc/cpuinfo; virtual machines often report only the family ("AMD EPYC").
let private cpuModel () =
    try
        File.ReadLines "/proc/cpuinfo"
        |> Seq.tryFind (fun l -> l.StartsWith("model name", StringComparison.Ordinal))
        |> Option.map (fun l -> l.Substring(l.IndexOf(':') + 1).Trim())
        |> Option.defaultValue (string RuntimeInformation.ProcessArchitecture)
    with :? IOException | :? UnauthorizedAccessException -> string RuntimeInformation.ProcessArchitecture

/// Physical memory, GiB (NaN off Linux).
let memTotalGiB () =
    try
        File.ReadLines "/proc/meminfo"
        |> Seq.tryFind (fun l -> l.StartsWith("MemTotal:", StringComparison.Ordinal))
        |> Option.map (fun l -> float (l.Split(' ', StringSplitOptions.RemoveEmptyEntries).[1]) / 1024.0 / 1024.0)
        |> Option.defaultValue nan
    with :? IOException | :? UnauthorizedAccessException -> nan

let private torchSharpVersion () =
    let asm = typeof<torch>.Assembly
    match asm.GetCustomAttribute<AssemblyInformationalVersionAttribute>() with
    | null -> string (asm.GetName().Version)
    | a -> a.InformationalVersion

/// Reads the machine; call after TorchRuntime.EnsureLoaded (the thread counts come from libtorch).
let describe () =
    { Cpu = cpuModel ()
      LogicalCores = Environment.ProcessorCount
      TorchThreads = torch.get_num_threads ()
      TorchInteropThreads = torch.get_num_interop_threads ()
      TorchSharp = torchSharpVersion ()
      Os = RuntimeInformation.OSDescription
      Runtime = RuntimeInformation.FrameworkDescription
      MemoryGiB = memTotalGiB () }

let toMarkdown (m: Machine) =
    String.concat "\n"
        [ $"- CPU: {m.Cpu}, {m.LogicalCores} logical cores, {m.MemoryGiB:F1} GiB memory"
          $"- torch threads: {m.TorchThreads} intra-op, {m.TorchInteropThreads} inter-op (libtorch defaults, not changed)"
          $"- TorchSharp {m.TorchSharp} (TorchSharp-cpu), {m.Runtime}"
          $"- OS: {m.Os}" ]
