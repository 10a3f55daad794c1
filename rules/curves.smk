# Mode connectivity: per cell, fit a Bezier curve for every seed pair, then evaluate them at
# points t. Fitting and evaluation get disjoint parts of the `curves` section, so changing only
# `points` re-evaluates the curves without refitting them.


rule curve_fit:
    input:
        checkpoints=lambda wildcards: [f"{RESULTS}/{wildcards.cell}/seed={seed}/model.pt" for pair in CURVE_PAIRS for seed in pair],
        code=sources("curve-fit"),
    output:
        per_pair("curve.pt"),
    params:
        settings=section("curves", drop=("enabled", "pairs", "points")),
        **TORCH_JOB,
    resources:
        **torch_resources("curve_fit"),
    threads: THREADS
    log:
        cell_log("curve_fit"),
    benchmark:
        cell_benchmark("curve_fit")
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax curve-fit --checkpoints {input.checkpoints:q}"
        " --settings {params.settings:q} --data-dir {params.data_dir:q} --device {params.device}"
        " --out {output:q} --threads {params.threads} > {log:q} 2>&1"


rule curve_eval:
    input:
        curves=per_pair("curve.pt"),
        code=sources("curve-eval"),
    output:
        per_pair("curve_eval.json"),
    params:
        settings=canonical_json({"points": CONFIG["curves"]["points"]}),
        **TORCH_JOB,
    resources:
        **torch_resources("curve_eval"),
    threads: THREADS
    log:
        cell_log("curve_eval"),
    benchmark:
        cell_benchmark("curve_eval")
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax curve-eval --curve {input.curves:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device} --out {output:q} --threads {params.threads} > {log:q} 2>&1"
