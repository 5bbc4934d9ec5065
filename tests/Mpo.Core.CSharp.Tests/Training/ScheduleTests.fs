module Mpo.Core.Tests.ScheduleTests

open Expecto
open Mpo.Training
open Mpo.Core.Tests.Support

let factor kind step warmup total = LearningRateSchedule.Factor(kind, step, warmup, total)

[<Tests>]
let tests =
    testList "Training.Schedule" [
        test "linear: warmup from 0, then linear decay to 0 at the last step (HF get_linear_schedule_with_warmup)" {
            // 10 updates, 2 of warmup: the first update uses lr 0, as HF's LambdaLR gives.
            let expected = [ 0.0; 0.5; 1.0; 7.0 / 8.0; 6.0 / 8.0; 5.0 / 8.0; 4.0 / 8.0; 3.0 / 8.0; 2.0 / 8.0; 1.0 / 8.0; 0.0; 0.0 ]
            let actual = [ for s in 0L .. 11L -> factor ScheduleKind.Linear s 2L 10L ]
            Expect.sequenceEqual actual expected "hand-computed factors"
            for total in [ 1L; 7L; 100L ] do
                for warmup in [ 0L; 1L; 3L ] do
                    for s in 0L .. total + 1L do
                        let formula =
                            if s < warmup then float s / float (max 1L warmup)
                            else max 0.0 (float (total - s) / float (max 1L (total - warmup)))
                        Expect.equal (factor ScheduleKind.Linear s warmup total) formula $"step {s}, warmup {warmup}, total {total}"
        }

        test "cosine: half a cosine period after warmup, constant: 1 after warmup" {
            Expect.equal (factor ScheduleKind.Cosine 0L 2L 10L) 0.0 "warmup start"
            Expect.equal (factor ScheduleKind.Cosine 1L 2L 10L) 0.5 "warmup middle"
            Expect.equal (factor ScheduleKind.Cosine 2L 2L 10L) 1.0 "peak"
            expectClose 1e-15 (factor ScheduleKind.Cosine 6L 2L 10L) 0.5 "halfway through the decay"
            expectClose 1e-15 (factor ScheduleKind.Cosine 4L 2L 10L) (0.5 * (1.0 + cos (System.Math.PI * 0.25))) "a quarter of the way"
            Expect.equal (factor ScheduleKind.Cosine 10L 2L 10L) 0.0 "end"
            Expect.sequenceEqual [ for s in 0L .. 5L -> factor ScheduleKind.Constant s 3L 10L ] [ 0.0; 1.0 / 3.0; 2.0 / 3.0; 1.0; 1.0; 1.0 ] "constant with warmup"
        }

        test "warmup steps override the ratio; the ratio rounds up (HF get_warmup_steps)" {
            Expect.equal (LearningRateSchedule.WarmupSteps(5L, 0.5, 100L)) 5L "steps win"
            Expect.equal (LearningRateSchedule.WarmupSteps(0L, 0.06, 100L)) 6L "6% of 100"
            Expect.equal (LearningRateSchedule.WarmupSteps(0L, 0.1, 25L)) 3L "ceil(2.5)"
        }
    ]
