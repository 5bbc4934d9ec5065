module Mpo.Core.Tests.TorchRuntimeTests

open System
open System.IO
open Expecto
open TorchSharp
open Mpo.Native

/// The libLibTorchSharp.so this test process loaded (a build output, patched by the build where needed).
let nativeCopy () = TorchRuntime.NativeCandidates() |> Seq.find File.Exists

let withTempCopy (action: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("mpo-elf-")
    try
        let path = Path.Combine(dir.FullName, "libLibTorchSharp.so")
        File.Copy(nativeCopy (), path)
        action path
    finally dir.Delete(true)

[<Tests>]
let tests =
    testList "Native" [
        test "libtorch loads and computes an SVD" {
            TorchRuntime.EnsureLoaded()
            let struct (_, s, _) = torch.linalg.svd(torch.eye(3L, dtype = torch.float64), fullMatrices = false)
            Expect.floatClose Accuracy.high (s.sum().item<double>()) 3.0 "singular values of I3 sum to 3" }

        test "the ELF reader sees libLibTorchSharp's libstdc++ requirements and the system's definitions" {
            let needs = ElfSymbolVersions.Needs(nativeCopy ())
            Expect.isTrue (needs |> Seq.exists (fun n -> n.Library = "libstdc++.so.6" && n.Version = "GLIBCXX_3.4.32")) "TorchSharp 0.107 needs GLIBCXX_3.4.32"
            match ElfSymbolVersions.SystemLibStdCxx() with
            | null -> ()
            | lib ->
                let defs = ElfSymbolVersions.Definitions lib
                Expect.contains defs "GLIBCXX_3.4" "every libstdc++ defines the base version"
                // after the build's patch nothing strong is missing any more
                Expect.isEmpty (ElfSymbolVersions.MissingLibStdCxxVersions(nativeCopy ())) "build output is loadable" }

        test "an unpatched copy is diagnosed, the loader's real error is reported, and the patch makes it load" {
            match ElfSymbolVersions.SystemLibStdCxx() with
            | null -> ()
            | lib when ElfSymbolVersions.Definitions lib |> Seq.contains "GLIBCXX_3.4.32" -> () // nothing to fix here
            | _ ->
                withTempCopy (fun path ->
                    // undo the build's patch: make GLIBCXX_3.4.32 strong again (two bytes, as the patch does)
                    let bytes = File.ReadAllBytes path
                    let need = ElfSymbolVersions.Needs(path) |> Seq.find (fun n -> n.Version = "GLIBCXX_3.4.32")
                    bytes.[int need.FlagsOffset] <- bytes.[int need.FlagsOffset] &&& ~~~2uy
                    File.WriteAllBytes(path, bytes)
                    let missing = ElfSymbolVersions.MissingLibStdCxxVersions path
                    Expect.equal (missing |> Seq.map (fun m -> m.Version) |> List.ofSeq) [ "GLIBCXX_3.4.32" ] "diagnosed"
                    Expect.stringContains (TorchRuntime.LoaderError path) "GLIBCXX_3.4.32" "the loader names the version, not TorchSharp's message"
                    let weakened = ElfSymbolVersions.WeakenMissingLibStdCxxVersions path
                    Expect.equal (List.ofSeq weakened) [ "GLIBCXX_3.4.32" ] "patched"
                    Expect.isEmpty (ElfSymbolVersions.MissingLibStdCxxVersions path) "nothing missing after the patch"
                    Expect.equal (File.ReadAllBytes(path).Length) bytes.Length "same size: an in-place flag edit"
                    Expect.isEmpty (ElfSymbolVersions.WeakenMissingLibStdCxxVersions path) "idempotent") }

        test "a file that is not ELF gets a clear error naming it" {
            let path = Path.GetTempFileName()
            try
                File.WriteAllText(path, "not an elf file at all, just text padding padding padding padding")
                Expect.throwsT<InvalidDataException> (fun () -> ElfSymbolVersions.Needs path |> ignore) "not ELF"
            finally File.Delete path }
    ]
