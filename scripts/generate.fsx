// The bundled pre-trained models at work: tiny-gpt2 continues a prompt (greedy and nucleus sampling, with a
// key/value cache), and tiny-bert fills in a [MASK]. Both load from models/ in Hugging Face layout with their own
// tokenizer files.
//   ./scripts/fsi scripts/generate.fsx
// Full mode: 30 new tokens per continuation. Quick mode (MPO_QUICK=1, as CI runs it): 8.
#load "references.fsx"

open System.IO
open TorchSharp
open Mpo.Models
open Mpo.Tokenization

let models = Path.Combine(__SOURCE_DIRECTORY__, "..", "models")

// GPT-2: continue a prompt.
let gpt2Folder = Path.Combine(models, "tiny-gpt2")
let gpt2Tokenizer = Tokenizers.FromFolder gpt2Folder
let struct (gpt2, _) = PretrainedModel.Load gpt2Folder
let prompt = "The whale"
let ids = torch.tensor(gpt2Tokenizer.Encode prompt |> Array.map int64).unsqueeze(0L)
let newTokens = if References.quick then 8 else 30
for name, options in [ "greedy", GenerationOptions(MaxNewTokens = newTokens)
                       "top-p 0.9, T 0.8", GenerationOptions(MaxNewTokens = newTokens, DoSample = true, TopP = 0.9, Temperature = 0.8) ] do
    use g = new torch.Generator(42UL)
    let out = Generation.Generate(gpt2, ids, options = options, generator = g)
    let text = gpt2Tokenizer.Decode(out.Sequences.[0L].data<int64>().ToArray() |> Array.map int)
    printfn "tiny-gpt2 (%s): %s" name (text.Replace("\n", " "))

// BERT: the most likely words for a masked position.
let bertFolder = Path.Combine(models, "tiny-bert")
let bertTokenizer = Tokenizers.FromFolder bertFolder :?> BertWordPieceTokenizer
let struct (bert, _) = PretrainedModel.Load bertFolder
let sentence = "the people of the united [MASK] have the right"
let encoded = bertTokenizer.Encode sentence
let framed = Array.concat [ [| 101 |]; encoded; [| 102 |] ] |> Array.map int64
let maskAt = framed |> Array.findIndex (fun t -> t = 103L)
using (torch.no_grad ()) (fun _ ->
    let logits = (bert.forward (ModelInputs(torch.tensor(framed).unsqueeze(0L)))).Logits
    let struct (_, top) = logits.[0L, int64 maskAt].topk(5)
    let words = top.data<int64>().ToArray() |> Array.map (fun i -> bertTokenizer.Decode [ int i ])
    printfn "tiny-bert: \"%s\" -> %s" sentence (String.concat ", " words))
