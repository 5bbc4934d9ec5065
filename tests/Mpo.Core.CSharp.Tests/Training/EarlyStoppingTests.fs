module Mpo.Core.Tests.EarlyStoppingTests

open System
open Expecto
open Mpo.Training
open Mpo.Core.Tests.Support

[<Tests>]
let tests =
    testList "Training.EarlyStopping" [
        test "min mode: stops after `patience` evaluations without improvement, remembering the best" {
            let e = EarlyStopping("loss", MetricMode.Min, 2)
            let decisions = [ for step, v in [ 10L, 1.0; 20L, 0.8; 30L, 0.85; 40L, 0.9 ] -> e.Observe(step, v), e.ShouldStop ]
            Expect.sequenceEqual decisions [ true, false; true, false; false, false; false, true ] "improved / stop after each evaluation"
            Expect.equal (e.Best, e.BestStep) (Some 0.8 |> Option.toNullable, 20L) "best value and step"
        }

        test "max mode with a threshold: a gain within the threshold is not an improvement" {
            let e = EarlyStopping("accuracy", MetricMode.Max, 3, 0.01)
            Expect.isTrue (e.Observe(1L, 0.70)) "first value is the best"
            Expect.isFalse (e.Observe(2L, 0.705)) "+0.005 is within the threshold"
            Expect.isTrue (e.Observe(3L, 0.72)) "+0.02 improves"
            Expect.equal e.EvaluationsWithoutImprovement 0 "counter reset"
            Expect.isFalse (e.Observe(4L, 0.60)) "worse"
            Expect.equal e.BestStep 3L "best step"
        }

        test "patience 0 tracks the best without stopping; state survives save/load; NaN is an error naming the metric" {
            let e = EarlyStopping("mse", MetricMode.Min)
            for s in 1L .. 10L do e.Observe(s, float s) |> ignore
            Expect.isFalse e.ShouldStop "never stops"
            let copy = EarlyStopping("mse", MetricMode.Min)
            copy.Load(e.Save())
            Expect.equal (copy.Best, copy.BestStep, copy.EvaluationsWithoutImprovement) (e.Best, e.BestStep, e.EvaluationsWithoutImprovement) "restored"
            let other = EarlyStopping("accuracy", MetricMode.Max)
            Expect.throwsT<FormatException> (fun () -> other.Load(e.Save())) "another metric's record is refused"
            throwsWith<ArgumentException> [ "'mse'"; "NaN"; "step 11" ] (fun () -> e.Observe(11L, nan) |> ignore) |> ignore
        }
    ]
