/// Jupyter notebooks in the Polyglot Notebooks flavour (nbformat 4): which cells are F# (a `#!fsharp` first line, the
/// cell's `dotnet_interactive.language` / `polyglot_notebook.kernelName`, or the notebook's default kernel), and the
/// outputs Jupyter front ends and code hosts render (stream, display_data, execute_result, error). Everything else in
/// the file is kept as it is.
module Mpo.Experiments.Notebooks.Ipynb

open System
open System.IO
open System.Text.Json
open System.Text.Json.Nodes

/// What one cell produced, in the order it produced it.
type Output =
    /// Text written to stdout or stderr.
    | Stream of name: string * text: string
    /// A displayed value, as MIME type → content (text/plain, text/markdown, text/html, image/png as base64).
    | Display of data: (string * string) list
    /// The value of the cell's last expression.
    | Result of data: (string * string) list
    | Error of name: string * value: string * traceback: string list

let private lines (text: string) =
    // Jupyter stores multi-line strings as lists of lines, each with its newline
    let parts = text.Split('\n')
    JsonArray([| for i in 0 .. parts.Length - 1 do
                   let p = if i < parts.Length - 1 then parts.[i] + "\n" else parts.[i]
                   if p <> "" then yield JsonValue.Create p :> JsonNode |])

let private bundle (data: (string * string) list) =
    let o = JsonObject()
    for mime, content in data do
        o.[mime] <- (if mime.StartsWith "image/" then JsonValue.Create content :> JsonNode else lines content :> JsonNode)
    o

/// The nbformat JSON of an output.
let toJson (executionCount: int) (output: Output) : JsonNode =
    let o = JsonObject()
    match output with
    | Stream (name, text) ->
        o.["output_type"] <- "stream"
        o.["name"] <- name
        o.["text"] <- lines text
    | Display data ->
        o.["output_type"] <- "display_data"
        o.["data"] <- bundle data
        o.["metadata"] <- JsonObject()
    | Result data ->
        o.["output_type"] <- "execute_result"
        o.["execution_count"] <- executionCount
        o.["data"] <- bundle data
        o.["metadata"] <- JsonObject()
    | Error (name, value, traceback) ->
        o.["output_type"] <- "error"
        o.["ename"] <- name
        o.["evalue"] <- value
        o.["traceback"] <- JsonArray([| for t in traceback -> JsonValue.Create t :> JsonNode |])
    o

/// A cell's source as one string (nbformat allows a string or a list of lines).
let source (cell: JsonObject) =
    match cell.["source"] with
    | :? JsonArray as a -> String.Join("", [ for l in a -> l.GetValue<string>() ])
    | null -> ""
    | s -> s.GetValue<string>()

let private path (keys: string list) (node: JsonNode) =
    keys |> List.fold (fun (n: JsonNode) k -> match n with :? JsonObject as o -> o.[k] | _ -> null) node

let private text (node: JsonNode) =
    match node with
    | :? JsonValue as v when v.GetValueKind() = JsonValueKind.String -> Some(v.GetValue<string>().ToLowerInvariant())
    | _ -> None

/// The notebook's default kernel (Polyglot writes metadata.polyglot_notebook.defaultKernelName).
let defaultKernel (notebook: JsonObject) =
    [ [ "metadata"; "polyglot_notebook"; "defaultKernelName" ]; [ "metadata"; "kernelspec"; "language" ] ]
    |> List.tryPick (fun p -> path p notebook |> text)
    |> Option.defaultValue "fsharp"

let isFSharp (kernel: string) = kernel = "fsharp" || kernel = "f#"

/// The kernel of a code cell and its code without a `#!kernel` first line.
let kernelOf (defaultKernel: string) (cell: JsonObject) =
    let code = source cell
    let first = code.Split('\n').[0].Trim()
    if first.StartsWith "#!" then first.Substring(2).ToLowerInvariant(), String.Join("\n", code.Split('\n') |> Array.skip 1)
    else
        let kernel =
            [ [ "metadata"; "polyglot_notebook"; "kernelName" ]; [ "metadata"; "dotnet_interactive"; "language" ] ]
            |> List.tryPick (fun p -> path p cell |> text)
            |> Option.defaultValue defaultKernel
        kernel, code

/// Reads a notebook, naming the file in any error.
let read (file: string) =
    if not (File.Exists file) then raise (FileNotFoundException(sprintf "notebook %s does not exist" file, file))
    let node =
        try JsonNode.Parse(File.ReadAllText file)
        with :? JsonException as e -> raise (InvalidDataException(sprintf "%s is not a notebook: %s" file e.Message))
    match node with
    | :? JsonObject as o when (o.["cells"] :? JsonArray) -> o
    | _ -> raise (InvalidDataException(sprintf "%s is not a notebook: it has no \"cells\" list" file))

/// The notebook as its file text (one-space indentation, as Jupyter writes it).
let write (notebook: JsonObject) =
    let options = JsonSerializerOptions(WriteIndented = true, IndentSize = 1, Encoder = Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping)
    notebook.ToJsonString options + "\n"
