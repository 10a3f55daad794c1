# Mode connectivity: per cell, fit a Bezier curve for every seed pair, then evaluate them at
# points t. Fitting and evaluation get disjoint parts of the `curves` section, so changing only
# `points` re-evaluates the curves without refitting them.


rule curve_fit:
    input:
        checkpoints=lambda wildcards: [f"{RESULTS}/{wildcards.cell}/seed={seed}/model.pt" for pair in CURVE_PAIRS for seed in pair],
        code=sources("curves"),
    output:
        per_pair("curve.pt"),
    params:
        settings=section("curves", drop=("enabled", "pairs", "points")),
        data_dir=CONFIG["data_dir"],
        device=CONFIG["device"],
    resources:
        gpu=1 if USE_GPU else 0,
        runtime=runtime("curve_fit"),
        mem_mb=memory("curve_fit"),
    threads: THREADS
    log:
        f"{RESULTS}/logs/curve_fit/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/curve_fit/{{cell}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax curve-fit --checkpoints {input.checkpoints:q}"
        " --settings {params.settings:q} --data-dir {params.data_dir:q} --device {params.device}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule curve_eval:
    input:
        curves=per_pair("curve.pt"),
        code=sources("curves"),
    output:
        per_pair("curve_eval.json"),
    params:
        settings=canonical_json({"points": CONFIG["curves"]["points"]}),
        data_dir=CONFIG["data_dir"],
        device=CONFIG["device"],
    resources:
        gpu=1 if USE_GPU else 0,
        runtime=runtime("curve_eval"),
        mem_mb=memory("curve_eval"),
    threads: THREADS
    log:
        f"{RESULTS}/logs/curve_eval/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/curve_eval/{{cell}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax curve-eval --curve {input.curves:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device} --out {output:q} --threads {threads} > {log:q} 2>&1"
