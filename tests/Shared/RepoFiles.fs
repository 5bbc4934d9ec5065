/// Files and folders of the repository (fixtures, bundled data), found by walking up from the test binary.
module Mpo.Tests.RepoFiles

open System
open System.IO

let find (relative: string) =
    let rec up (dir: DirectoryInfo) =
        match dir with
        | null -> failwithf "cannot find %s above %s" relative AppContext.BaseDirectory
        | d when File.Exists(Path.Combine(d.FullName, relative)) || Directory.Exists(Path.Combine(d.FullName, relative)) ->
            Path.Combine(d.FullName, relative)
        | d -> up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)
