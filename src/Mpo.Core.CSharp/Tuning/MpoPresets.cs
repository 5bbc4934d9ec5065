using System;
using System.Collections.Generic;
using System.Linq;

namespace Mpo.Tuning;

/// <summary>
/// The papers' tuner configurations by name. All decompose every MPOP family a model has into 5 cores at full bonds
/// (MPOP_full) with central tensors frozen (+LFA); they differ in the factors:
/// <list type="bullet">
/// <item><c>mpop</c>: the factorization chooser for every matrix (any model size, e.g. the bundled tiny models);</item>
/// <item><c>mpop-albert</c>: MPOP's ALBERT shapes with the appendix's balanced attention shape (spec §3.8, §4.1):
/// embedding [5,10,10,10,6]×[2,2,4,4,2], attention and pooler [3,4,4,4,4]×[4,4,4,4,3], FFN [4,4,8,6,4]×[3,4,4,4,4]
/// and its mirror (1024-wide models: [4,4,4,4,4]², [4,4,8,8,4]×[4,4,4,4,4]);</item>
/// <item><c>mpop-albert-code</c>: the same with the released code's default attention shape [4,4,4,4,3]²;</item>
/// <item><c>mpop-bert</c>: the BERT shapes of the MPOE repository (spec §4.1): embedding padded 30522 → 30720 as
/// [6,8,10,8,8]×[4,4,4,4,3], attention and pooler [3,4,4,4,4]×[4,4,4,4,3], FFN in [8,4,4,4,6]×[3,4,4,4,4], FFN out
/// [3,4,4,4,4]×[4,4,8,6,4] (MPOP released no BERT code; the pooler takes the attention shape).</item>
/// </list>
/// A preset's factors that fit no module of a model are an error naming the module (they are for those sizes).
/// </summary>
public static class MpoPresets
{
    static FactorizationShape S(int[] rows, int[] cols) => new(rows, cols);

    static readonly FactorizationShape Balanced768 = S(new[] { 3, 4, 4, 4, 4 }, new[] { 4, 4, 4, 4, 3 });
    static readonly FactorizationShape Code768 = S(new[] { 4, 4, 4, 4, 3 }, new[] { 4, 4, 4, 4, 3 });
    static readonly FactorizationShape Square1024 = S(new[] { 4, 4, 4, 4, 4 }, new[] { 4, 4, 4, 4, 4 });
    static readonly FactorizationShape FfnIn768 = S(new[] { 4, 4, 8, 6, 4 }, new[] { 3, 4, 4, 4, 4 });
    static readonly FactorizationShape FfnOut768 = S(new[] { 3, 4, 4, 4, 4 }, new[] { 4, 4, 8, 6, 4 });
    static readonly FactorizationShape FfnIn1024 = S(new[] { 4, 4, 8, 8, 4 }, new[] { 4, 4, 4, 4, 4 });
    static readonly FactorizationShape FfnOut1024 = S(new[] { 4, 4, 4, 4, 4 }, new[] { 4, 4, 8, 8, 4 });

    static MpoTunerConfig Albert(string name, FactorizationShape attention768) => new()
    {
        Preset = name,
        Factorizations = new Dictionary<string, IReadOnlyList<FactorizationShape>>
        {
            [MpoFamilies.WordEmbedding] = new[] { S(new[] { 5, 10, 10, 10, 6 }, new[] { 2, 2, 4, 4, 2 }) },
            ["attention"] = new[] { attention768, Square1024 },
            [MpoFamilies.Pooler] = new[] { attention768, Square1024 },
            [MpoFamilies.FfnIn] = new[] { FfnIn768, FfnIn1024 },
            [MpoFamilies.FfnOut] = new[] { FfnOut768, FfnOut1024 },
        },
    };

    static readonly Dictionary<string, Func<MpoTunerConfig>> presets = new()
    {
        ["mpop"] = () => new MpoTunerConfig { Preset = "mpop" },
        ["mpop-albert"] = () => Albert("mpop-albert", Balanced768),
        ["mpop-albert-code"] = () => Albert("mpop-albert-code", Code768),
        ["mpop-bert"] = () => new MpoTunerConfig
        {
            Preset = "mpop-bert",
            Factorizations = new Dictionary<string, IReadOnlyList<FactorizationShape>>
            {
                [MpoFamilies.WordEmbedding] = new[] { S(new[] { 6, 8, 10, 8, 8 }, new[] { 4, 4, 4, 4, 3 }) },
                ["attention"] = new[] { Balanced768 },
                [MpoFamilies.Pooler] = new[] { Balanced768 },
                [MpoFamilies.FfnIn] = new[] { S(new[] { 8, 4, 4, 4, 6 }, new[] { 3, 4, 4, 4, 4 }) },
                [MpoFamilies.FfnOut] = new[] { FfnOut768 },
            },
        },
    };

    /// <summary>The preset names.</summary>
    public static IReadOnlyList<string> Names { get; } = presets.Keys.ToArray();

    /// <summary>The preset called <paramref name="name"/>; an error naming <paramref name="source"/> otherwise.</summary>
    public static MpoTunerConfig Get(string name, string source = "preset") =>
        presets.TryGetValue(name, out var make) ? make()
        : throw new InvalidTunerConfigException(source, "preset", $"unknown preset '{name}'; known: {string.Join(", ", Names)}");
}
