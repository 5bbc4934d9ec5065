/// What `mpo count` prints (and reports embed): a model's parameters with its MPO layers grouped by family and shape,
/// then peft's trainable-parameter line.
module Mpo.Experiments.Reports.ParameterCounts

open System
open Mpo.Tuning

/// One row per family and shape: how many such matrices, their factors and bonds, dense, MPO, central and auxiliary
/// parameters summed over them; then the totals.
let table (count: ModelCount) =
    let groups =
        count.MpoLayers
        |> Seq.groupBy (fun l -> (l.Family |> Option.ofObj |> Option.defaultValue "?"), string l.Factorization, Tables.factors l.Bonds)
        |> List.ofSeq
    let rows =
        [ for (family, factors, bonds), layers in groups ->
            let layers = List.ofSeq layers
            let first = layers.Head
            let sum f = layers |> List.sumBy f
            [ family; string layers.Length; $"{first.Factorization.Rows}×{first.Factorization.Cols}"; factors; bonds
              Tables.int64s (sum (fun l -> l.DenseParameters)); Tables.int64s (sum (fun l -> l.Parameters))
              Tables.int64s (sum (fun l -> l.CentralParameters)); Tables.int64s (sum (fun l -> l.Parameters - l.CentralParameters)) ] ]
    let all = List.ofSeq count.MpoLayers
    let total f = Tables.int64s (all |> List.sumBy f)
    Tables.markdown
        [ "family"; "matrices"; "shape"; "factors (rows×cols)"; "bonds"; "dense"; "MPO"; "central"; "auxiliary" ]
        (rows @ [ [ "all MPO layers"; string all.Length; ""; ""; ""; total (fun l -> l.DenseParameters); total (fun l -> l.Parameters)
                    total (fun l -> l.CentralParameters); total (fun l -> l.Parameters - l.CentralParameters) ] ])

/// The whole report: the table when there are MPO layers, then peft's line.
let text (count: ModelCount) =
    if count.MpoLayers.Count = 0 then string count.Parameters
    else table count + "\n\n" + string count.Parameters
