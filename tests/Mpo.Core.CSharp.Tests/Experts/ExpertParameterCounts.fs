/// The test oracle for Mpo.Tuning.ParameterCounting (the one counting function): parameter counts of MoE layers from
/// shapes alone, written out from MPOE §3.1 (spec §5.4) apart from any layer or model code. Per FFN matrix of
/// T = rows·cols parameters replaced by n experts: dense experts (Switch/MoE) n·T; MPO experts one shared central
/// tensor plus n sets of auxiliary tensors, C + n·A, which is (γ + n)/(γ + 1)·T at full bonds when the MPO holds about
/// T (γ = C/A). A router per layer: d·n + n (with bias). Biases, when the FFN has them, are per expert. A model's total
/// is its base count plus AddedByDenseExperts / AddedByMpoExperts per FFN matrix plus one router per layer.
namespace Mpo.Core.Tests

open Mpo.Decomposition

type ExpertParameterCounts =
    /// n dense copies of a [rows, cols] matrix (and its bias).
    static member DenseExperts(rows: int64, cols: int64, experts: int, ?bias: bool) =
        int64 experts * (rows * cols + (if defaultArg bias false then rows else 0L))

    /// (central, auxiliary) parameters of one MPO at its full bonds.
    static member Split(factorization: MpoFactorization) =
        let bonds = factorization.FullBonds()
        let central = factorization.CentralParameterCount bonds
        struct (central, factorization.ParameterCount bonds - central)

    /// n MPO experts sharing one central tensor at full bonds: C + n·(A + bias).
    static member MpoExperts(factorization: MpoFactorization, experts: int, ?bias: bool) =
        let struct (central, auxiliary) = ExpertParameterCounts.Split factorization
        central + int64 experts * (auxiliary + (if defaultArg bias false then int64 factorization.Rows else 0L))

    /// What replacing one dense [rows, cols] matrix (and its bias) by n dense experts adds: (n − 1)·(T + bias).
    static member AddedByDenseExperts(rows: int64, cols: int64, experts: int, ?bias: bool) =
        let bias = defaultArg bias false
        ExpertParameterCounts.DenseExperts(rows, cols, experts, bias) - ExpertParameterCounts.DenseExperts(rows, cols, 1, bias)

    /// What replacing one dense matrix (and its bias) by n MPO experts adds: C + n·(A + bias) − (T + bias). For
    /// T5-base's FFN at full bonds C = T = 2,359,296 and A = 184,720, so each matrix adds n·A.
    static member AddedByMpoExperts(factorization: MpoFactorization, experts: int, ?bias: bool) =
        let bias = defaultArg bias false
        ExpertParameterCounts.MpoExperts(factorization, experts, bias)
        - (int64 factorization.Rows * int64 factorization.Cols + (if bias then int64 factorization.Rows else 0L))

    /// A router Linear(d, n): d·n weights and n biases.
    static member Router(features: int64, experts: int, ?bias: bool) =
        features * int64 experts + (if defaultArg bias true then int64 experts else 0L)
