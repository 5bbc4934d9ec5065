/// JSON for reports people open: snake_case keys, indented, written atomically.
module Mpo.Experiments.Reports.Json

open System.Text.Json
open System.Text.Json.Serialization
open Mpo.Checkpoints

let options =
    let o = JsonSerializerOptions(WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower)
    o.DefaultIgnoreCondition <- JsonIgnoreCondition.Never
    o.NumberHandling <- JsonNumberHandling.AllowNamedFloatingPointLiterals
    o

let serialize (value: obj) = JsonSerializer.Serialize(value, value.GetType(), options)

/// Writes <c>value</c> as JSON to <c>path</c> (temporary name, then rename).
let write (path: string) (value: obj) = AtomicFile.WriteAllText(path, serialize value + "\n")
