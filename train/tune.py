"""`fmnist-edge tune`: an Optuna study over the training recipe's hyperparameters.

Each trial is one `train()` run, into its own folder under --out, scored as `train --select best`
scores an epoch (record.validation_score: validation accuracy, with photos its mean with the photo
validation accuracy), on the kept epoch. The test set is never read. After every epoch the trial
reports that score, and Hyperband prunes the trials that trail at the same epoch, so most of a
study's time goes to the promising settings.

The study lives in its storage, a database URL, and nowhere else: a stopped `tune` continues when
the same command runs again, and any number of workers (processes, machines) join one study by
giving the same URL, a PostgreSQL one across machines. Workers write heartbeats; a trial whose
worker died (killed, power cut) is marked failed by the next worker that looks after a grace period
of two heartbeats, and its settings are queued once more. Each study keeps the search space's
version and the settings every trial shares (epochs, subset, seed, photos); a worker that differs
in either is refused, since its scores would not be comparable.

This module imports Optuna and TensorFlow only inside its functions: the CLI reads its constants.
"""

from __future__ import annotations

import os
import random
import shlex
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fmnist_edge.runtime.errors import UsageError
from fmnist_edge.train.config import PHOTOS_DIR, TrainConfig

SEARCH_SPACE_VERSION = 2  # a new range or parameter is a new version: old studies are then refused
TUNE_OUT = Path("runs/tune")  # the trials' folders; and the SQLite study, unless --storage names another
STUDY_NAME = "fmnist-edge"
STUDY_FILE = "study.db"
HEARTBEAT_SECONDS = 60  # a dead worker's trial is failed after two of these
CONNECT_TIMEOUT_SECONDS = 10
TABLE_RACE_TRIES = 5
MARKER_FILE = "study.json"  # which study the trial folders in --out belong to


@dataclass(frozen=True)
class Param:
    """One hyperparameter: a TrainConfig field (dotted into its nested dataclasses), the `train`
    option that sets it, and its range. The defaults are TrainConfig's, never typed here."""

    path: str
    flag: str
    low: float
    high: float
    log: bool = False
    photos_only: bool = False


SPACE = (
    Param("peak_lr", "--lr", 0.02, 0.4, log=True),
    Param("weight_decay", "--weight-decay", 2e-4, 1e-2, log=True),  # v2: was 1e-4 to 2e-3
    Param("label_smoothing", "--label-smoothing", 0.0, 0.2),
    Param("augment.erase_prob", "--erase-prob", 0.0, 0.8),
    Param("model.dropout", "--dropout", 0.0, 0.4),
    Param("photo_fraction", "--photo-fraction", 0.05, 0.25, photos_only=True),
)


def space(photos: bool) -> tuple[Param, ...]:
    return tuple(p for p in SPACE if photos or not p.photos_only)


def field_value(cfg: Any, path: str) -> Any:
    for name in path.split("."):
        cfg = getattr(cfg, name)
    return cfg


def with_values(cfg: Any, values: dict[str, float]) -> Any:
    """`cfg` with each dotted field in `values` replaced (nested dataclasses rebuilt with `replace`)."""
    for path, value in values.items():
        head, _, rest = path.partition(".")
        cfg = replace(cfg, **{head: with_values(getattr(cfg, head), {rest: value}) if rest else value})
    return cfg


@dataclass(frozen=True)
class Settings:
    """What every trial of a study shares, so that their scores compare: kept in the study."""

    epochs: int
    subset: int | None
    seed: int
    photos: bool
    heartbeat: int

    def flags(self) -> str:
        subset = f" --subset {self.subset}" if self.subset is not None else ""
        photos = "" if self.photos else " --no-photos"
        return f"--epochs {self.epochs}{subset} --seed {self.seed}{photos} --heartbeat {self.heartbeat}"


def default_storage(out: Path) -> str:
    return f"sqlite:///{out.as_posix()}/{STUDY_FILE}"


def open_storage(url: str, heartbeat: int | None = None, create: bool = True) -> Any:
    """An Optuna RDBStorage on `url`, connected and checked; every way a URL can be wrong is one
    UsageError line (the password never printed). Without `create`, a SQLite file must exist."""
    import optuna
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise UsageError(f"--storage {url!r} is not a database URL; give sqlite:///PATH or "
                         "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE") from None
    shown = parsed.render_as_string(hide_password=True)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise UsageError(f"--storage {shown}: an in-memory database dies with its process; give sqlite:///PATH")
        if not create and not Path(parsed.database).is_file():
            raise UsageError(f"--storage {shown}: no such study database; `fmnist-edge tune` creates it")
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--storage {shown}: cannot create its folder ({exc.strerror or exc})") from None
        kwargs = {"connect_args": {"timeout": 60}}  # workers take turns writing one file: wait, do not fail
    elif parsed.get_backend_name() == "postgresql":
        kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS}}
    else:
        raise UsageError(f"--storage {shown}: a {parsed.get_backend_name()} database is not supported; give "
                         "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DATABASE")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        heartbeats: dict[str, Any] = {} if heartbeat is None else {
            "heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat,
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
        try:
            for attempt in range(TABLE_RACE_TRIES):
                try:
                    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **heartbeats)
                except sqlalchemy.exc.SQLAlchemyError as exc:
                    # Workers starting together on a new database all create Optuna's tables; the
                    # losers of that race find them made a moment later. PostgreSQL says so with an
                    # IntegrityError or ProgrammingError, SQLite with an OperationalError ("table ...
                    # already exists"); any other error (a wrong host, a bad password) is not retried.
                    racing = isinstance(exc, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError) or (
                        "already exists" in str(exc))
                    if not racing or attempt == TABLE_RACE_TRIES - 1:
                        raise
                    time.sleep(0.5 + random.random())
        except ImportError:
            raise UsageError(f"--storage {shown}: its database driver is not installed; "
                             'pip install "fmnist-edge[tune]" installs psycopg: postgresql+psycopg://...') from None
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise UsageError(f"--storage {shown}: cannot open the database ({_reason(exc)})") from None


def open_study(storage: Any, name: str, settings: Settings, base: TrainConfig, photos_dir: Path | None) -> Any:
    """The study `name` in `storage`, created on first use (with the recipe's defaults queued as its
    first trial: the baseline every other trial is measured against); a study of another search
    space version or other settings is refused."""
    import optuna

    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=settings.epochs, reduction_factor=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(constant_liar=True)  # parallel workers do not all try one point
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", pruner=pruner,
                                sampler=sampler, load_if_exists=True)
    attrs = study.user_attrs
    if "search_space_version" not in attrs:
        study.set_user_attr("settings", asdict(settings))
        study.set_user_attr("photos_dir", None if photos_dir is None else str(photos_dir))
        study.set_user_attr("space", [asdict(p) for p in space(settings.photos)])
        study.set_user_attr("search_space_version", SEARCH_SPACE_VERSION)  # last: a worker that sees it sees all
        study.enqueue_trial({p.path: field_value(base, p.path) for p in space(settings.photos)},
                            skip_if_exists=True)
    else:
        check_version(study, name)
        stored = Settings(**attrs["settings"])
        if stored != settings:
            raise UsageError(f"study {name!r} was made with {stored.flags()}; give the same to join it "
                             "(or another --study-name)")
    return study


def check_version(study: Any, name: str) -> None:
    version = study.user_attrs.get("search_space_version")
    if version != SEARCH_SPACE_VERSION:
        raise UsageError(f"study {name!r} was made with search space version {version}, this fmnist-edge tunes "
                         f"version {SEARCH_SPACE_VERSION}; give another --study-name or --storage")


def claim_folder(out: Path, storage_url: str, name: str) -> None:
    """The trial folders in `out` belong to one study: a second study there is refused, so that its
    trial-0000 never meets the first one's."""
    import json

    from sqlalchemy.engine import make_url

    from fmnist_edge.common.atomic import write_text_atomic

    mine = {"storage": make_url(storage_url).render_as_string(hide_password=True), "study": name}
    marker = out / MARKER_FILE
    try:
        if marker.is_file():
            theirs = json.loads(marker.read_text(encoding="utf-8"))
            if theirs != mine:
                raise UsageError(f"--out {out} holds the trials of study {theirs.get('study')!r} in "
                                 f"{theirs.get('storage')}; choose another --out")
            return
        write_text_atomic(marker, json.dumps(mine, indent=2) + "\n")
    except (OSError, ValueError) as exc:
        raise UsageError(f"--out {out}: cannot use it ({getattr(exc, 'strerror', None) or exc})") from None


def run(settings: Settings, trials: int, storage_url: str, name: str, out: Path, data_dir: Path | None,
        photos: Path | None, log: Callable[[str], None] = print) -> Any:
    """Work on the study until it holds `trials` finished (complete or pruned) trials, counting the
    ones other workers are running; returns the study. Everything is checked before any training.

    Two workers that look at the same moment may both start the last trial: a study can end with
    one trial more than asked per extra worker."""
    import optuna
    import sqlalchemy.exc

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own lines say what happened, once (no tracebacks)
    # Heartbeats and fail_stale_trials are "experimental" (since Optuna 2.9): said once per call, to no one's use.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = open_storage(storage_url, settings.heartbeat)
    base = replace(TrainConfig(), epochs=settings.epochs, subset=settings.subset, seed=settings.seed)
    study = open_study(storage, name, settings, base, photos)
    claim_folder(out, storage_url, name)
    objective = _objective(study, base, settings, out, data_dir, photos, log)
    try:
        while True:
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial: failed, its settings queued again
            counts = state_counts(study)
            if counts["COMPLETE"] + counts["PRUNED"] + counts["RUNNING"] >= trials:
                return study
            study.optimize(objective, n_trials=1)
    except sqlalchemy.exc.OperationalError as exc:  # the server went away, a disk filled: one line, not a traceback
        raise UsageError(f"--storage {_shown(storage_url)}: the database failed ({_reason(exc)})") from None


def state_counts(study: Any) -> dict[str, int]:
    import optuna

    counts = {state.name: 0 for state in optuna.trial.TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
    return counts


def _objective(study: Any, base: TrainConfig, settings: Settings, out: Path, data_dir: Path | None,
               photos: Path | None, log: Callable[[str], None]) -> Callable[[Any], float]:
    import optuna

    from fmnist_edge.train.record import validation_score
    from fmnist_edge.train.train import StopTraining, train

    def objective(trial: Any) -> float:
        values = {p.path: trial.suggest_float(p.path, p.low, p.high, log=p.log) for p in space(settings.photos)}
        folder = out / f"trial-{trial.number:04d}"
        trial.set_user_attr("folder", str(folder))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        shown = ", ".join(f"{p.path} {values[p.path]:.4g}" for p in space(settings.photos))
        log(f"trial {trial.number}: {shown} -> {folder}")

        reported = [0]

        def report(epoch: int, score: float) -> None:
            trial.report(score, epoch)
            reported[0] = epoch
            if trial.should_prune():
                raise StopTraining

        try:
            record = train(with_values(base, values), folder, data_dir=data_dir, photos=photos,
                           log=lambda line: log(f"trial {trial.number}: {line}"), on_epoch=report)
        except StopTraining:
            log(f"trial {trial.number}: pruned after epoch {reported[0]}")
            raise optuna.TrialPruned() from None
        except KeyboardInterrupt:
            study.enqueue_trial(trial.params)  # stopped, not judged: a later run tries these settings again
            raise
        score = validation_score(record.history[(record.best_epoch or len(record.history)) - 1])
        log(f"trial {trial.number}: score {score:.4f}")
        return score

    return objective


def best_command(storage_url: str, name: str) -> list[str]:
    """The `fmnist-edge train` command line of the study's best complete trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(storage_url, create=False)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise UsageError(f"no study {name!r} in {_shown(storage_url)}; `fmnist-edge tune` creates it") from None
    check_version(study, name)
    try:
        best = study.best_trial
    except ValueError:
        raise UsageError(f"study {name!r} has no completed trial yet") from None
    settings = Settings(**study.user_attrs["settings"])
    args = ["fmnist-edge", "train", "--epochs", str(settings.epochs), "--seed", str(settings.seed)]
    if settings.subset is not None:
        args += ["--subset", str(settings.subset)]
    if settings.photos:
        args += ["--photos", study.user_attrs.get("photos_dir") or str(PHOTOS_DIR)]
    else:
        args.append("--no-photos")
    for p in space(settings.photos):
        args += [p.flag, repr(float(best.params[p.path]))]
    return args


def format_command(args: list[str]) -> str:
    return shlex.join(args)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    """The driver's own first line (SQLAlchemy's adds the SQL and a link on further lines)."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
