/// Saving figures people can open offline: self-contained HTML (plotly.js inlined; the default CDN reference renders
/// blank without a network) and, where Debian's chromium is installed, a PNG rendered headless from that HTML.
module Mpo.Experiments.Plots.Export

open System
open System.Diagnostics
open System.IO
open Plotly.NET

let private chromium () =
    [ "/usr/bin/chromium"; "/usr/bin/chromium-browser"; "/usr/bin/google-chrome" ] |> List.tryFind File.Exists

/// Renders an HTML file to PNG with headless Chromium; returns the PNG path, or None when no browser is installed
/// or it fails (a figure is a nicety, never a reason to fail a run).
let png (html: string) (width: int) (height: int) =
    match chromium () with
    | None -> None
    | Some browser ->
        let target = Path.ChangeExtension(html, ".png")
        let profile = Directory.CreateTempSubdirectory("mpo-chromium-")
        try
            let args =
                [ "--headless"; "--no-sandbox"; "--disable-gpu"; "--disable-background-networking"; "--no-first-run"
                  "--disable-component-update"; "--disable-sync"; "--hide-scrollbars"; $"--user-data-dir={profile.FullName}"
                  $"--screenshot={target}"; $"--window-size={width},{height}"; "--virtual-time-budget=5000"
                  "file://" + Path.GetFullPath html ]
            let psi = ProcessStartInfo(browser, args, RedirectStandardOutput = true, RedirectStandardError = true)
            use p = Process.Start psi
            p.StandardOutput.ReadToEndAsync() |> ignore
            p.StandardError.ReadToEndAsync() |> ignore
            if p.WaitForExit 60_000 && p.ExitCode = 0 && File.Exists target then Some target
            else (try p.Kill true with _ -> ()); None
        finally
            try profile.Delete true with _ -> ()

/// Writes <c>chart</c> as self-contained HTML at <c>path</c> (.html) and a PNG beside it when possible.
/// Returns the files written.
let save (path: string) (width: int) (height: int) (chart: GenericChart) =
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path)) |> ignore
    let html = Path.ChangeExtension(path, ".html")
    let tmp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath html), "." + Path.GetFileNameWithoutExtension html + ".tmp.html")
    chart
    |> Chart.withSize (width, height)
    |> Chart.withConfig (Config.init (DisplayModeBar = false))
    |> Chart.withDisplayOptions (DisplayOptions.init (PlotlyJSReference = PlotlyJSReference.Full))
    |> Chart.saveHtml (tmp, OpenInBrowser = false)
    File.Move(tmp, html, true)
    html :: (png html width height |> Option.toList)
