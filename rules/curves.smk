# Mode connectivity: fit a Bezier curve per cell and seed pair, then evaluate it at points t.
# Fitting and evaluation get disjoint parts of the `curves` section, so changing only
# `points` re-evaluates the curves without refitting them.


rule curve_fit:
    input:
        checkpoint_a=f"{RESULTS}/{{cell}}/seed={{a}}/model.pt",
        checkpoint_b=f"{RESULTS}/{{cell}}/seed={{b}}/model.pt",
        code=sources("curves"),
    output:
        f"{RESULTS}/{{cell}}/pair={{a}}-{{b}}/curve.pt",
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
        f"{RESULTS}/logs/curve_fit/{{cell}}/pair={{a}}-{{b}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/curve_fit/{{cell}}/pair={{a}}-{{b}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax curve-fit --checkpoints {input.checkpoint_a:q} {input.checkpoint_b:q}"
        " --settings {params.settings:q} --data-dir {params.data_dir:q} --device {params.device}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule curve_eval:
    input:
        curve=f"{RESULTS}/{{cell}}/pair={{a}}-{{b}}/curve.pt",
        code=sources("curves"),
    output:
        f"{RESULTS}/{{cell}}/pair={{a}}-{{b}}/curve_eval.json",
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
        f"{RESULTS}/logs/curve_eval/{{cell}}/pair={{a}}-{{b}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/curve_eval/{{cell}}/pair={{a}}-{{b}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax curve-eval --curve {input.curve:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device} --out {output:q} --threads {threads} > {log:q} 2>&1"
