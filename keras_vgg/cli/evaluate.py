"""`keras-vgg-eval` (also `recipes/imagenet_eval.py`): evaluates a trained net with the
paper's test protocols (Sect. 3.2) and prints a table shaped like its Tables 3-5 (top-1 /
top-5 error, and images/s); several nets are evaluated each and fused (Sect. 4.4, a table
shaped like Table 6).

    keras-vgg-eval --model_dir=runs/d --data=folder:/data/val
    keras-vgg-eval --model_dir=runs/d --protocols=dense,multi_crop,combined \
        --data='tfds:imagenet2012?data_dir=/data/tfds'
    keras-vgg-eval --config=E --weights=imagenet --data=folder:/data/val
    keras-vgg-eval --saved_model=exported/mine/1 --data=folder:/data/val
    keras-vgg-eval --model_dir=runs/d,runs/e --data=folder:/data/val
    keras-vgg-eval --config=D,E --weights=imagenet,imagenet --data=...

The net (`keras_vgg.nets`) says its preprocessing and its scales Q: a run's directory the
paper's multi-scale set for its training scale ({S-32, S, S+32}, or {S_min, (S_min+S_max)/2,
S_max} when jittered), weights what their source records. An export is evaluated densely at
the Q (and flip) it was exported with. `--max_images` evaluates a random sample (seeded: the
same images for every net and protocol).

Localisation runs (`--task=localisation`, Appendix A) are evaluated under both protocols
of Appendix A.2; the full one needs the classification net, by default the run the
localisation run was initialised from (`--classifier_dir` to name another). Several
localisation runs merge the union of their boxes.
"""

from __future__ import annotations

from absl import flags

from keras_vgg import evaluation, localisation_eval, runs, sources
from keras_vgg.cli import net_flags, one_line_errors, refuse_arguments, run_console

FLAGS = flags.FLAGS
PROGRAM = "keras-vgg-eval"


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    net_flags.define(flag_values, several=True)
    flags.DEFINE_string("data", "tfds:imagenet2012", "Evaluation source (tfds:, folder:, "
                        "tfrecord:).", flag_values=flag_values)
    flags.DEFINE_string("split", "validation", "TFDS split.", flag_values=flag_values)
    flags.DEFINE_list("protocols", ["dense"], f"Some of {', '.join(evaluation.PROTOCOLS)}.",
                      flag_values=flag_values)
    flags.DEFINE_list("test_scales", None, "Test scales Q, e.g. 256,384,512; default the "
                      "net's (a run's multi-scale set, the weights' own).",
                      flag_values=flag_values)
    flags.DEFINE_bool("flip", True, "Average each image with its mirror image.",
                      flag_values=flag_values)
    flags.DEFINE_integer("max_images", None, "Evaluate a random sample of this many images "
                         "(the same for every net and protocol).", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_string("classifier_dir", None, "With localisation runs: the classification "
                        "run whose scores rate their boxes; default the run they started from.",
                        flag_values=flag_values)


def localisation_report(localisers: list[runs.Run], scales: tuple[int, ...],
                        flag_values: flags.FlagValues) -> str:
    """Both protocols of Appendix A.2 for localisation runs, one line each."""
    if any(run.config.task != "localisation" for run in localisers):
        raise ValueError("--model_dir mixes localisation and classification runs")
    classifier_dir = flag_values.classifier_dir or localisers[0].config.init_from
    if not (classifier_dir and runs.is_run(classifier_dir)
            and runs.load(classifier_dir).config.task == "classification"):
        raise ValueError("the full protocol rates boxes with a classification net: give "
                         "--classifier_dir=RUN")
    classifier = runs.load(classifier_dir)
    for run in localisers:
        runs.check_same_classes(classifier.class_ids, run.class_ids,
                                what=f"the localisation run {run.directory}")
    q = scales[0] if scales else localisers[0].test_scale
    options = {"test_scale": q, "preprocessing": localisers[0].config.preprocessing,
               "split": flag_values.split}
    models = [run.build_model() for run in localisers]
    lines = [f"{run.directory}: " + localisation_eval.centre_crop(
        model, flag_values.data, **options)[0].summary()
        for run, model in zip(localisers, models, strict=True)]
    full, _ = localisation_eval.full(models, classifier.build_model(), flag_values.data,
                                     **options)
    names = " + ".join(run.directory for run in localisers)
    return "\n".join([*lines, f"{names} (boxes rated by {classifier.directory}): "
                       f"{full.summary()}"])


def report(flag_values: flags.FlagValues) -> str:
    """The evaluation the flags ask for, as the table to print."""
    scales = tuple(int(q) for q in flag_values.test_scales or ())
    loaded = [runs.load(path) for path in flag_values.model_dir or ()]
    if any(run.config.task == "localisation" for run in loaded):
        return localisation_report(loaded, scales, flag_values)
    data_classes = None
    if flag_values.weights and not (flag_values.class_names or flag_values.classes):
        # Weights without class names: the data's classes, in its label order.
        data_classes = list(sources.open_single_label(
            flag_values.data, split=flag_values.split, purpose="evaluation").class_ids)
    nets = net_flags.nets_from_flags(flag_values, class_names=data_classes)
    options = {"flip": flag_values.flip, "split": flag_values.split,
               "max_images": flag_values.max_images, "progress": True}
    if len(nets) > 1:
        rows = [row for protocol in flag_values.protocols for row in evaluation.fuse(
            nets, flag_values.data, protocol=protocol, **options)]
        return evaluation.fusion_table(rows)
    (net,) = nets
    return evaluation.table(evaluation.evaluate_net(
        net, flag_values.data, protocols=flag_values.protocols, test_scales=scales,
        **options))


def main(argv, flag_values: flags.FlagValues = FLAGS) -> None:
    refuse_arguments(argv)
    with one_line_errors(PROGRAM):
        table = report(flag_values)
    print(table)


def run() -> None:
    """The console command."""
    define_flags()
    run_console(main)
