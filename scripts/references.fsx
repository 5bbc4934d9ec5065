// Loads Mpo into `dotnet fsi` from the Release build (run scripts through ./scripts/fsi, which builds first).
// TorchSharp finds its native libraries beside TorchSharp.dll in that folder; Mpo.Native.TorchRuntime.EnsureLoaded()
// patches and diagnoses them before the first tensor.
#r "../src/Mpo.Experiments.FSharp/bin/Release/net10.0/linux-x64/TorchSharp.dll"
#r "../src/Mpo.Experiments.FSharp/bin/Release/net10.0/linux-x64/Mpo.Core.CSharp.dll"
#r "../src/Mpo.Experiments.FSharp/bin/Release/net10.0/linux-x64/Plotly.NET.dll"
#r "../src/Mpo.Experiments.FSharp/bin/Release/net10.0/linux-x64/Spectre.Console.dll"
#r "../src/Mpo.Experiments.FSharp/bin/Release/net10.0/linux-x64/mpo.dll"

Mpo.Native.TorchRuntime.EnsureLoaded()

/// True when the script runs in CI's quick mode (MPO_QUICK=1): smaller work, outputs under a temporary folder.
let quick = System.Environment.GetEnvironmentVariable "MPO_QUICK" = "1"

/// Where a script writes: out/<name> normally, a fresh temporary folder in quick mode (never the committed data).
let outputFolder (name: string) =
    let dir =
        if quick then System.IO.Directory.CreateTempSubdirectory("mpo-" + name + "-").FullName
        else System.IO.Path.Combine(__SOURCE_DIRECTORY__, "..", "out", name)
    System.IO.Directory.CreateDirectory dir |> ignore
    dir
