/// The bundled tiny pre-trained models, as data: architecture (HF class and config.json keys), tokenizer,
/// pre-training objective and budget. `mpo pretrain` trains them from scratch on the bundled corpus; their sizes are
/// chosen so each pre-trains in at most 30 minutes on 2 CPU cores and all of them fit in 60 MB at half precision
/// (issue 3 §4). Widths follow the smallest published BERT/GPT-2/T5 variants' proportions (d_ff = 4·d, 32-wide heads).
module Mpo.Experiments.Pretraining.TinyModels

open System.Text.Json.Nodes

/// How a model learns from raw text (BERT: Devlin et al. 2019 §3.1; GPT-2: Radford et al. 2019; T5: Raffel et al.
/// 2020 §3.1.4, noise density 0.15, mean span 3).
type Objective =
    | MaskedLm
    | CausalLm
    | SpanCorruption

type TinyModel =
    { /// Folder name under models/ and the model card's title.
      Name: string
      /// HF class written to config.json `architectures`.
      Architecture: string
      /// config.json content (HF keys), without `architectures`.
      Config: JsonObject
      /// Folder under data/tokenizers copied next to the weights.
      Tokenizer: string
      Objective: Objective
      /// Tokens per training example (encoder and decoder alike for T5's inputs).
      SequenceLength: int
      BatchSize: int
      Steps: int
      WarmupSteps: int
      LearningRate: float
      WeightDecay: float }

let private json (pairs: (string * JsonNode) list) =
    let o = JsonObject()
    for k, v in pairs do o[k] <- v
    o

let private n (x: int) = JsonValue.Create x :> JsonNode
let private f (x: float) = JsonValue.Create x :> JsonNode
let private s (x: string) = JsonValue.Create x :> JsonNode
let private b (x: bool) = JsonValue.Create x :> JsonNode

/// Masked LM over bert-base-uncased's 30,522 WordPieces.
let bert =
    { Name = "tiny-bert"
      Architecture = "BertForMaskedLM"
      Config =
        json [ "model_type", s "bert"; "vocab_size", n 30522; "hidden_size", n 128; "num_hidden_layers", n 4
               "num_attention_heads", n 4; "intermediate_size", n 512; "hidden_act", s "gelu"
               "hidden_dropout_prob", f 0.1; "attention_probs_dropout_prob", f 0.1; "max_position_embeddings", n 128
               "type_vocab_size", n 2; "initializer_range", f 0.02; "layer_norm_eps", f 1e-12; "pad_token_id", n 0 ]
      Tokenizer = "bert-base-uncased"
      Objective = MaskedLm
      SequenceLength = 128
      BatchSize = 16
      Steps = 1200
      WarmupSteps = 120
      LearningRate = 1e-3
      WeightDecay = 0.01 }

/// Causal LM over GPT-2's 50,257 byte-level BPE tokens; lm_head tied to wte.
let gpt2 =
    { Name = "tiny-gpt2"
      Architecture = "GPT2LMHeadModel"
      Config =
        json [ "model_type", s "gpt2"; "vocab_size", n 50257; "n_embd", n 128; "n_layer", n 4; "n_head", n 4
               "n_positions", n 128; "activation_function", s "gelu_new"; "resid_pdrop", f 0.1; "embd_pdrop", f 0.1
               "attn_pdrop", f 0.1; "layer_norm_epsilon", f 1e-5; "initializer_range", f 0.02
               "bos_token_id", n 50256; "eos_token_id", n 50256 ]
      Tokenizer = "gpt2"
      Objective = CausalLm
      SequenceLength = 128
      BatchSize = 16
      Steps = 400
      WarmupSteps = 40
      LearningRate = 1e-3
      WeightDecay = 0.01 }

/// T5 v1.0 span corruption over a SentencePiece vocabulary trained on the bundled corpus (8,000 pieces) plus T5's
/// 100 sentinels <extra_id_0..99> at the top ids.
let t5 =
    { Name = "tiny-t5"
      Architecture = "T5ForConditionalGeneration"
      Config =
        json [ "model_type", s "t5"; "vocab_size", n 8100; "d_model", n 128; "d_kv", n 32; "d_ff", n 512
               "num_layers", n 3; "num_decoder_layers", n 3; "num_heads", n 4; "relative_attention_num_buckets", n 32
               "relative_attention_max_distance", n 128; "dropout_rate", f 0.1; "layer_norm_epsilon", f 1e-6
               "initializer_factor", f 1.0; "feed_forward_proj", s "relu"; "tie_word_embeddings", b true
               "is_encoder_decoder", b true; "pad_token_id", n 0; "eos_token_id", n 1; "decoder_start_token_id", n 0 ]
      Tokenizer = "t5-tiny-spiece"
      Objective = SpanCorruption
      SequenceLength = 128
      BatchSize = 32
      Steps = 1500
      WarmupSteps = 150
      LearningRate = 1e-3
      WeightDecay = 0.01 }

let all = [ bert; gpt2; t5 ]

let find (name: string) =
    all |> List.tryFind (fun m -> m.Name = name || m.Name = "tiny-" + name)
    |> Option.defaultWith (fun () ->
        invalidArg "model" (sprintf "unknown tiny model '%s'; choose one of: %s" name (all |> List.map (fun m -> m.Name) |> String.concat ", ")))
