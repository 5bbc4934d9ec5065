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

/// One row per kind of MoE layer (dense or MPO experts, how many): layers, the dense FFN they replaced, routers,
/// shared central tensors, what the experts own, all summed; then the totals. The papers' totals leave the routers out.
let expertTable (count: ModelCount) =
    let all = List.ofSeq count.ExpertLayers
    let sum (layers: ExpertLayerCount list) f = Tables.int64s (layers |> List.sumBy f)
    let row name (layers: ExpertLayerCount list) =
        [ name; string layers.Length
          sum layers (fun l -> l.Dense); sum layers (fun l -> l.Router); sum layers (fun l -> l.SharedCentral)
          sum layers (fun l -> l.PerExpert); sum layers (fun l -> l.Parameters) ]
    let rows =
        [ for (kind, experts), layers in all |> List.groupBy (fun l -> l.Kind, l.Experts) ->
            row $"{kind} experts × {experts}" layers ]
    Tables.markdown [ "MoE layers"; "layers"; "dense FFN"; "routers"; "shared central"; "experts' own"; "MoE total" ]
        (rows @ (if rows.Length > 1 then [ row "all MoE layers" all ] else []))

/// The whole report: the tables of MPO and MoE layers when there are any, then peft's line (with MoE layers, the total
/// without the routers first, as the papers count).
let text (count: ModelCount) =
    let parts =
        [ if count.MpoLayers.Count > 0 then table count
          if count.ExpertLayers.Count > 0 then
              expertTable count
              + sprintf "\n\nwithout routers: %s parameters; routers: %s" (Tables.int64s (count.Parameters.Total - count.RouterParameters))
                        (Tables.int64s count.RouterParameters) ]
    String.Join("\n\n", parts @ [ string count.Parameters ])
