# Mode connectivity: per cell, fit a Bezier curve for every seed pair, then evaluate them at
# points t. Fitting and evaluation get disjoint parts of the `curves` section, so changing only
# `points` re-evaluates the curves without refitting them.


rule curve_fit:
    input:
        checkpoints=lambda wildcards: [
            f"{RESULTS}/{wildcards.cell}/seed={seed}/{CHECKPOINT}" for pair in job_pairs(wildcards) for seed in pair
        ],
        code=sources("curve-fit"),
    output:
        job_files("curve_fit", "curve.pt"),
    log:
        cell_log("curve_fit"),
    benchmark:
        cell_benchmark("curve_fit")
    wildcard_constraints:
        pair=r"\d+-\d+",
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("curve_fit"),
    params:
        **TORCH_JOB,
        settings=section("curves", drop=CURVE_FIT_NOT_PASSED),
    shell:
        "lltax curve-fit --checkpoints {input.checkpoints:q}"
        " --settings {params.settings:q} --data-dir {params.data_dir:q} --device {params.device:q}"
        " --out {output:q} --threads {threads:q} > {log:q} 2>&1"


rule curve_eval:
    input:
        curves=per_pair("curve.pt"),
        code=sources("curve-eval"),
    output:
        per_pair("curve_eval.json"),
    log:
        cell_log("curve_eval"),
    benchmark:
        cell_benchmark("curve_eval")
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("curve_eval"),
    params:
        **TORCH_JOB,
        settings=canonical_json({key: CONFIG["curves"][key] for key in CURVE_EVAL_KEYS}),
    shell:
        "lltax curve-eval --curves {input.curves:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device:q} --out {output:q} --threads {threads:q} > {log:q} 2>&1"
