"""The three targets side by side, each against its own floor measured in this run: a student's run
(bench/grader_speed.py), a class (bench/batch_throughput.py) and the virtual runtime
(bench/runtime_overhead.py). Run: python bench/all.py"""
import batch_throughput
import grader_speed
import runtime_overhead

if __name__ == "__main__":
    ratios = {}
    for name, module in (("student's run", grader_speed), ("batch", batch_throughput),
                         ("virtual runtime", runtime_overhead)):
        print(f"== {name}")
        ratios[name] = (module.ratio(), module.TARGET)
    print("== summary")
    for name, (ratio, target) in ratios.items():
        print(f"{name}: {ratio:.2f}x (target {target}x)")
