"""mongod dies mid-annotate: one line saying how much was saved, a non-zero exit, nothing saved lost, and a rerun
resumes. Runs against a private real mongod (the test session's shared one must stay up), killed for real."""
import subprocess
import sys

import pymongo
from helpers.env import REPO, python_env
from helpers.mongod import private_mongod, start_mongod

HELPER = REPO / "tests" / "helpers" / "annotate_paused.py"


def test_lost_database_is_one_line_and_keeps_what_was_saved(tiny_model, tmp_path):
    from PIL import Image

    files = []
    for i in range(24):
        files.append(str(tmp_path / f"img{i}.png"))
        Image.new("RGB", (16, 12), (i * 10, 0, 0)).save(files[-1])
    dbpath = tmp_path / "db"
    cli_args = ["--", "annotate", "--dataset", "lost", "--model", tiny_model, "--field", "pred", "--batch-size", "4"]
    with private_mongod(dbpath) as (mongod, port):
        env = python_env(FIFTYONE_DATABASE_URI=f"mongodb://127.0.0.1:{port}", FIFTYONE_DATABASE_VALIDATION="false")
        errors = tmp_path / "stderr.txt"
        with errors.open("w") as sink:  # a file: a full stderr pipe must not block the child
            child = subprocess.Popen([sys.executable, str(HELPER), "lost", *files, *cli_args], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sink)
        try:
            said = next((line for line in child.stdout if line.startswith("saved ")), "")  # after progress bars
            assert said, errors.read_text()
            saved = int(said.split()[1])
            # acknowledged writes reach the journal within 100 ms; make that now, then kill mongod for real
            pymongo.MongoClient(port=port).admin.command("fsync")
            mongod.kill()
            mongod.wait(timeout=60)
            child.stdin.write("\n")
            child.stdin.flush()
            out, _ = child.communicate(timeout=300)
        finally:
            child.kill()
            child.wait()
    err = errors.read_text()
    assert child.returncode == 1, out + err
    assert "Traceback" not in err and "pymongo" not in err, err
    lines = [line for line in err.splitlines() if "database" in line]
    assert len(lines) == 1 and lines[0].startswith(f"error: lost the database connection after {saved} saved; "
                                                   "rerun to resume"), err
    # the same database, restarted: what was saved is there, and the rerun does only the rest
    mongod, port = start_mongod(dbpath)
    try:
        env["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{port}"
        rerun = subprocess.run([sys.executable, "-m", "fiftyone_mslite", *cli_args[1:]], env=env, text=True,
                               capture_output=True, timeout=300)
    finally:
        mongod.kill()
        mongod.wait(timeout=60)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{24 - saved} labeled, {saved} already labeled, 0 failed" in rerun.stdout
