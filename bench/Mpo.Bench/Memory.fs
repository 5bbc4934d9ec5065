/// Peak memory as the kernel sees it: the process's resident-set high-water mark (VmHWM), which Linux resets when
/// "5" is written to /proc/self/clear_refs. It is whole-process RSS — runtime, libtorch, the model and whatever the
/// allocators keep — so compare peaks within one table, not against a tensor-size estimate.
module Mpo.Bench.Memory

open System
open System.IO
open System.Runtime.InteropServices

module private Native =
    /// glibc keeps freed blocks (its mmap threshold grows after large frees), so without a trim the RSS left over
    /// by the previous configuration would become the next one's baseline.
    [<DllImport("libc", EntryPoint = "malloc_trim")>]
    extern int mallocTrim(unativeint pad)

let private statusField (name: string) =
    try
        File.ReadLines "/proc/self/status"
        |> Seq.tryFind (fun l -> l.StartsWith(name + ":", StringComparison.Ordinal))
        |> Option.map (fun l -> float (l.Split(' ', StringSplitOptions.RemoveEmptyEntries).[1]) / 1024.0)
    with :? IOException | :? UnauthorizedAccessException -> None

/// Current resident set, MiB (None off Linux).
let rssMiB () = statusField "VmRSS"

/// Resident-set high-water mark since the last reset, MiB (None off Linux).
let peakMiB () = statusField "VmHWM"

let private trim () =
    // A managed collection first: tensors dropped without Dispose free their native memory in finalizers.
    GC.Collect()
    GC.WaitForPendingFinalizers()
    GC.Collect()
    if RuntimeInformation.IsOSPlatform OSPlatform.Linux then
        try Native.mallocTrim 0un |> ignore with :? DllNotFoundException | :? EntryPointNotFoundException -> ()

/// Returns freed memory to the OS and resets the high-water mark to the current RSS. False when the kernel does not
/// allow the reset (then peaks are since process start, and say so).
let resetPeak () =
    trim ()
    try
        File.WriteAllText("/proc/self/clear_refs", "5")
        true
    with :? IOException | :? UnauthorizedAccessException -> false

/// Peak RSS while <paramref name="f"/> runs, with the RSS just before it: (result, baseline MiB, peak MiB).
let peakDuring (f: unit -> 'T) =
    let resetOk = resetPeak ()
    let baseline = rssMiB () |> Option.defaultValue nan
    let result = f ()
    let peak = if resetOk then peakMiB () |> Option.defaultValue nan else nan
    result, baseline, peak

