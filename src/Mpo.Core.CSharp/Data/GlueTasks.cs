using System.Collections.Generic;

namespace Mpo.Data;

/// <summary>
/// The nine tasks of the GLUE benchmark (Wang et al., ICLR 2019), on which MPOP and MPOE report, as
/// <see cref="TextTask"/> descriptions of the files in <c>glue_data/</c>. Names are GLUE's folder names.
/// </summary>
public static class GlueTasks
{
    private static readonly string[] Binary = ["0", "1"];
    private static readonly string[] Entailment = ["entailment", "not_entailment"];

    private static readonly string[] MnliTest =
    [
        "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
        "sentence1_parse", "sentence2_parse", "sentence1", "sentence2",
    ];

    private static readonly string[] StsbTest =
        ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"];

    /// <summary>Corpus of Linguistic Acceptability: is the sentence acceptable English? Labels 0/1; Matthews correlation.</summary>
    /// <remarks>Train/dev files have no header: source code, label, the original author's mark ('*', '?', ...), sentence.</remarks>
    public static readonly TextTask CoLA = new("CoLA", TaskKind.Classification, "index", "sentence", null, "label", null,
        ["source", "label", "author_mark", "sentence"], ["index", "sentence"], [TaskMetric.Matthews], Binary, labeledHasHeader: false);

    /// <summary>Stanford Sentiment Treebank, two classes: is the sentence positive? Labels 0/1; accuracy.</summary>
    public static readonly TextTask SST2 = new("SST-2", TaskKind.Classification, "index", "sentence", null, "label", null,
        ["sentence", "label"], ["index", "sentence"], [TaskMetric.Accuracy], Binary);

    /// <summary>Microsoft Research Paraphrase Corpus: are the two sentences paraphrases? Labels 0/1; F1 and accuracy.</summary>
    public static readonly TextTask MRPC = new("MRPC", TaskKind.Classification, "index", "#1 String", "#2 String", "Quality", null,
        ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
        [TaskMetric.F1, TaskMetric.Accuracy], Binary);

    /// <summary>Semantic Textual Similarity Benchmark: a similarity score from 0 to 5 (regression); Pearson and Spearman.</summary>
    public static readonly TextTask STSB = new("STS-B", TaskKind.Regression, "index", "sentence1", "sentence2", "score", null,
        [.. StsbTest, "score"], StsbTest, [TaskMetric.Pearson, TaskMetric.Spearman], scoreRange: (0, 5));

    /// <summary>Quora Question Pairs: are the two questions duplicates? Labels 0/1; accuracy and F1.</summary>
    public static readonly TextTask QQP = new("QQP", TaskKind.Classification, "id", "question1", "question2", "is_duplicate", null,
        ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], ["id", "question1", "question2"],
        [TaskMetric.Accuracy, TaskMetric.F1], Binary);

    /// <summary>Multi-Genre NLI: contradiction, entailment or neutral; accuracy on the matched and mismatched splits.</summary>
    /// <remarks>
    /// The train layout; dev files carry label1..label5 before gold_label, which reading by name absorbs. Label order
    /// as in the GLUE baselines and BERT's run_classifier (Hugging Face datasets orders them entailment, neutral,
    /// contradiction instead).
    /// </remarks>
    public static readonly TextTask MNLI = new("MNLI", TaskKind.Classification, "index", "sentence1", "sentence2", "gold_label", null,
        [.. MnliTest, "label1", "gold_label"], MnliTest, [TaskMetric.Accuracy], ["contradiction", "entailment", "neutral"]);

    /// <summary>Question NLI (from SQuAD): does the sentence answer the question? entailment/not_entailment; accuracy.</summary>
    public static readonly TextTask QNLI = new("QNLI", TaskKind.Classification, "index", "question", "sentence", "label", null,
        ["index", "question", "sentence", "label"], ["index", "question", "sentence"], [TaskMetric.Accuracy], Entailment);

    /// <summary>Recognizing Textual Entailment: entailment/not_entailment; accuracy.</summary>
    public static readonly TextTask RTE = new("RTE", TaskKind.Classification, "index", "sentence1", "sentence2", "label", null,
        ["index", "sentence1", "sentence2", "label"], ["index", "sentence1", "sentence2"], [TaskMetric.Accuracy], Entailment);

    /// <summary>Winograd NLI: is the pronoun-substituted sentence entailed? Labels 0/1 (1 = entailment); accuracy.</summary>
    public static readonly TextTask WNLI = new("WNLI", TaskKind.Classification, "index", "sentence1", "sentence2", "label", null,
        ["index", "sentence1", "sentence2", "label"], ["index", "sentence1", "sentence2"], [TaskMetric.Accuracy], Binary);

    /// <summary>The nine tasks in GLUE's order.</summary>
    public static readonly IReadOnlyList<TextTask> All = [CoLA, SST2, MRPC, STSB, QQP, MNLI, QNLI, RTE, WNLI];
}
