"""The cells of each notebook after its parameters and loading cells (see build_notebooks.py).

A string starting with ``md:`` is a markdown cell; any other is a code cell. Cells only call
`distil` and show what it returns: no function or class is defined in a notebook.
"""

NOTEBOOKS = {
    "00_teacher": ("TeacherParams", """
# 00 · Prepare the teacher

The teacher is the large detector whose features the student will learn from. This notebook makes
sure the checkpoint named by `teacher` exists and is good on the validation set:

- a checkpoint that already exists is **reused** (or used **as given**, e.g. an RT-DETR-x trained on COCO);
- with `teacher_weights` it is **fine-tuned** from those weights on this dataset;
- otherwise it is **trained** from `teacher_model`: first the backbone and hybrid encoder with a dense YOLO
  head (fast to learn), then the RT-DETR decoder on top of the frozen encoder. Feature distillation reads
  only the encoder's outputs, so that is the part that has to be strong.

Set `rebuild: true` to train it again.
""", [
        "md:## The data the teacher learns from\nFor the demo the teacher sees `teacher_train` images, more "
        "than the student's `demo_train`; both share the same validation images.",
        "data_yaml = distil.teacher_training.teacher_data(params)\ndata_yaml",
        "md:## Train, fine-tune or reuse it",
        "report = distil.prepare_teacher(params)\nprint(report.source, report.checkpoint)",
        "md:## How good is it (Ultralytics validator, validation split)",
        "import pandas as pd\n\npd.DataFrame([{\"checkpoint\": report.checkpoint, \"source\": report.source, "
        "\"mAP50\": report.map50, \"mAP50-95\": report.map50_95}])",
        "pd.DataFrame([vars(stage) for stage in report.stages]) if report.stages else "
        "\"not trained here: the checkpoint was used as it is\"",
        "distil.manifest.record_notebook(params, \"00_teacher\", started, report=report.as_dict())",
    ]),
    "01_preprocessing": ("PreprocessParams", """
# 01 · Image enhancement

Every demo image may carry one capture fault (colour cast, under- or over-exposure, low contrast,
sensor noise, blur), and the generator recorded which. This notebook shows what the enhancement
pipeline (`distil.preprocess`) does to each fault, step by step, and measures it.
The pipeline shown is `explore_pipeline`; the one applied when training is `enhance`.
""", [
        "data_yaml = distil.prepare_data(params)\nby_fault = distil.data.images_by_fault(data_yaml, "
        "params.samples)\npipeline = distil.Pipeline.from_spec(params.explore_pipeline)\nprint(pipeline.describe())",
        "md:## Before and after, per fault",
        "distil.viz.before_after(by_fault, pipeline)",
        "md:## Each step alone, then the whole pipeline",
        "steps = {name: distil.Pipeline.from_dict({name: True}) for name in distil.preprocess.STEP_ORDER}\n"
        "steps[\"pipeline\"] = pipeline\nfirst_of_each = {fault: images[0] for fault, images in by_fault.items()}\n"
        "distil.viz.step_effects(first_of_each, steps)",
        "md:## Histograms per channel",
        "example = first_of_each.get(\"underexposed\", next(iter(first_of_each.values())))\n"
        "distil.viz.channel_histograms({\"original\": example, \"enhanced\": pipeline(example)})",
        "md:## Measured\nEach fault has a measure that shows it (`distil.image_quality`): the table gives it "
        "before and after the pipeline, averaged over the images of that fault, and whether it moved the "
        "right way. The second table gives the change under each step alone.",
        "distil.image_quality.fault_effects(by_fault, pipeline)",
        "distil.image_quality.step_table(by_fault, steps)",
        "md:## Try it live\nIn JupyterLab the toggles and sliders below redraw the enhanced image.",
        "from distil.enhance_controls import pipeline_explorer\n\n"
        "live_image = distil.data.sample_images(data_yaml, params.explore_image + 1)[-1]\n"
        "pipeline_explorer(live_image, pipeline)",
        "distil.manifest.record_notebook(params, \"01_preprocessing\", started)",
    ]),
    "02_teacher_features": ("FeatureParams", """
# 02 · What the teacher hands over

Which layers are distilled, what shapes they have, and what the feature maps look like: the teacher's
encoder outputs, an untrained student at the paired layers, and, once `03_distill` has run
(`distilled_run`), the trained student after its adapters - the very tensors the feature loss compared.
""", [
        "teacher = distil.teacher.load_teacher(params.teacher_path)\nstudent = distil.features.load_student(params.student)",
        "md:## Candidate layers\nEvery layer that outputs a feature map, with its shape at `imgsz`; the inputs of "
        "each model's head are the default candidates.",
        "distil.pairing.layers_frame(teacher, params.imgsz).tail(12)",
        "distil.pairing.layers_frame(student, params.imgsz).tail(10)",
        "md:## The pairing\nLevels are matched by stride; an adapter maps the student's channels to the teacher's.",
        "pairs = distil.pair_layers(teacher, student, params.imgsz, params.teacher_layers, params.student_layers)\n"
        "distil.pairing.pairs_frame(pairs)",
        "md:## Feature maps on sample images\nFor each level: where it responds (mean squared activation over "
        "channels) and what it encodes (its three main channel directions as RGB).",
        "data_yaml = distil.prepare_data(params)\nimages = distil.data.sample_images(data_yaml, params.samples)\n"
        "run_dir = params.run_dir(params.distilled_run)\n"
        "run_dir = run_dir if (run_dir / \"distill.json\").exists() else None\n"
        "comparison = distil.features.compare_features(params.teacher_path, params.student, images, params.imgsz, run_dir,"
        "\n                                              params.teacher_layers, params.student_layers)\n"
        "print(\"compared:\", list(comparison.maps[0]), \"| run:\", run_dir)",
        "for image, maps in zip(images, comparison.maps):\n"
        "    display(distil.viz.feature_panel(distil.features.letterboxed(image, params.imgsz), maps, "
        "comparison.level_names))",
        "md:## The distillation as recorded by the run",
        "distil.diagram.distillation_diagram(run_dir) if run_dir else "
        "f\"no finished distillation run in {params.run_dir(params.distilled_run)} yet: run 03_distill first\"",
        "distil.manifest.record_notebook(params, \"02_teacher_features\", started)",
    ]),
    "03_distill": ("DistillParams", """
# 03 · Distill the teacher into the student

The main job. The frozen teacher and the student see the same batches; forward hooks capture the
teacher's encoder outputs and the student's neck outputs at the same strides; a 1x1-conv adapter per
level maps student channels to teacher channels; the loss is the detection loss plus
`distill_weight` x the feature loss (`loss`: mse, cwd or pkd). Only the student and the adapters are
trained, and `weights/best.pt` is a plain YOLO model of the student's size.

With `distill_weight: 0` this notebook trains the **baseline**: the same student under the identical
schedule, without a teacher. It runs on the GPU when there is one (`device: auto`).
""", [
        "run_dir = distil.train(params)\nrun_dir",
        "md:## Loss curves\nDetection losses, the distillation loss per level (already weighted; they sum to "
        "`dis_loss`), and validation mAP50-95, beside the baseline when it exists.",
        "runs = {params.run_name: run_dir}\nbaseline_dir = params.run_dir(\"auto\", baseline=True)\n"
        "if params.distilling and (baseline_dir / \"results.csv\").exists():\n    runs[\"baseline\"] = baseline_dir\n"
        "distil.viz.loss_curves(runs)",
        "md:## Final validation of `best.pt`",
        "import json\n\nimport pandas as pd\n\n"
        "pd.Series(json.loads((run_dir / \"manifest.json\").read_text())[\"final_metrics\"], name=params.run_name)",
        "md:## What was distilled",
        "distil.diagram.distillation_diagram(run_dir) if params.distilling else \"baseline: no distillation\"",
        "distil.manifest.record_notebook(params, \"03_distill\", started, run_dir=str(run_dir))",
    ]),
    "04_evaluate": ("EvalParams", """
# 04 · Does distillation pay?

Teacher, baseline student and distilled student on the same validation set, through the Ultralytics
validator: mAP50, mAP50-95, precision, recall, per-class AP, parameters, GFLOPs, inference time
per image on this device, and the share of the teacher-baseline gap that distillation closed,
`(distilled - baseline) / (teacher - baseline)` on mAP50-95.
""", [
        "data_yaml = distil.prepare_data(params)\n"
        "table = distil.evaluate(params.models(), data_yaml, params.imgsz, params.batch, params.ultralytics_device,\n"
        "                        params.enhance, params.speed_reps)\ntable",
        "paths = distil.save_evaluation(table, params.eval_dir)\npaths",
        "md:## Per class",
        "table.attrs[\"per_class\"].pivot(index=\"class\", columns=\"model\", values=\"AP50-95\")",
        "md:## Plots",
        "distil.viz.metric_bars(table)",
        "distil.viz.pr_curves(table)",
        "distil.viz.loss_curves({label: path.parent.parent for label, path in params.models().items() "
        "if label != \"teacher\"})",
        "md:## Detections side by side",
        "pipeline = distil.Pipeline.from_spec(params.enhance)  # the images go through what the models trained on\n"
        "samples = [pipeline(image) for image in distil.data.sample_images(data_yaml, params.samples)]\n"
        "detectors = {label: distil.teacher.detector(path) for label, path in params.models().items()}\n"
        "distil.viz.detections(detectors, samples, params.imgsz, device=params.ultralytics_device)",
        "distil.manifest.record_notebook(params, \"04_evaluate\", started, comparison=table.reset_index()"
        ".to_dict(orient=\"records\"))",
    ]),
    "05_dashboard": ("DashboardParams", """
# distil dashboard

Upload an image (or pick a sample), adjust the enhancement, and compare the detectors side by side.
Serve it with `make dashboard` (Voila on 127.0.0.1); choose the models with
`make dashboard MODELS=baseline=yolov8n.pt,distilled=outputs/runs/demo-mse/weights/best.pt`.
""", [
        "from distil.dashboard import build_dashboard\n\n"
        "app = build_dashboard(params.models, params.outputs_dir, params.name, params.loss, params.teacher)\n"
        "app.widget",
    ]),
}
