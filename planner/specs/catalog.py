"""Loading the YAML catalogs (`hardware/`, `models/`) and resolving names against them.

The catalog is loaded explicitly (`load_catalog()`), cached per root, never at import. In a wheel the catalogs
sit in `planner/_catalog/`; in a source checkout they are the repository's top-level folders.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import Field, ValidationError

from planner.errors import PlannerError
from planner.specs.deployment import Deployment
from planner.specs.engine import CalibrationProfile, EngineSpec
from planner.specs.hardware import DEFAULT_NETWORK, Cluster, Frozen, GpuPool, GpuSpec, NetworkSpec
from planner.specs.inputs import MAX_CONFIG_BYTES, MAX_GPUS_PER_NODE, count, read_text
from planner.specs.kernels import KernelProfile, derive_kernel_profile
from planner.specs.model import ModelSpec, model_from_hf_config
from planner.specs.precision import Dtype


class ModelEntry(Frozen):
    """One `models/*.yaml` file: tdplan's fields plus the Hugging Face config keys under `config`."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    hf_repo: str
    source: str
    published_params_b: float = Field(gt=0)
    published_params_source: str
    config: dict[str, Any]

    def to_spec(self) -> ModelSpec:
        return model_from_hf_config(
            self.config,
            id=self.id,
            name=self.name,
            aliases=self.aliases,
            source=self.source,
            hf_repo=self.hf_repo,
            published_params_b=self.published_params_b,
        )


T = TypeVar("T")


def default_root() -> Path:
    """Folder holding `hardware/` and `models/`: inside the installed package, else the source checkout."""
    packaged = Path(__file__).resolve().parents[1] / "_catalog"
    if (packaged / "hardware").is_dir():
        return packaged
    return Path(__file__).resolve().parents[2]


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


# libyaml's safe loader where PyYAML was built with it: parsing the catalog is then about 10x faster.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    text = read_text(path, None, "catalog YAML", MAX_CONFIG_BYTES)
    try:
        return yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise PlannerError(f"malformed YAML in {path}{where}: fix the file or remove it") from None


def _validate(cls: type[Frozen], data: Any, path: Path) -> Any:
    if not isinstance(data, dict):
        raise PlannerError(f"{path} does not hold a mapping: each catalog file describes one entry")
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise PlannerError(f"{path}: field '{field}': {first['msg']} ({len(err.errors())} problem(s))") from None


class Catalog(Frozen):
    """Every GPU, model and engine profile known, keyed by id."""

    root: Path
    gpus: dict[str, GpuSpec]
    models: dict[str, ModelSpec]
    engines: dict[str, EngineSpec]
    calibrations: dict[str, CalibrationProfile]
    kernels: dict[str, KernelProfile] = Field(default_factory=dict)  # measured: hardware/kernels/<gpu>.yaml
    derived_kernels: dict[str, KernelProfile] = Field(default_factory=dict)  # every other GPU, by the rule

    def gpu(self, name: str) -> GpuSpec:
        """Look a GPU up by id or alias, case-insensitively."""
        return self._resolve(name, self.gpus, "GPU", "see `tdplan hardware list`")

    def cluster(self, gpus: str, network: str | None = None, gpus_per_node: int | None = None) -> Cluster:
        """Read `--gpus 32xL20 [--network 100gbe] [--gpus-per-node 8]` into a Cluster."""
        pool = GpuPool.parse(gpus)
        try:
            gpu = self.gpu(pool.gpu_name)
        except PlannerError as err:
            raise PlannerError(err.problem, "gpus") from None
        per_node = count(gpus_per_node, "gpus_per_node", MAX_GPUS_PER_NODE)
        return Cluster(
            gpu=gpu,
            num_gpus=pool.count,
            gpus_per_node=per_node or gpu.gpus_per_node,
            network=NetworkSpec.parse(network) if network is not None else DEFAULT_NETWORK,
        )

    def kernel_profile(self, gpu_id: str) -> KernelProfile:
        """Kernel constants of a GPU: its measured profile, else the one derived from the measured GPUs
        (planner.specs.kernels.derive_kernel_profile, computed once when the catalog is loaded)."""
        profile = self.kernels.get(gpu_id) or self.derived_kernels.get(gpu_id)
        if profile is not None:
            return profile
        gpu = self.gpu(gpu_id)  # an alias: resolve it once
        profile = self.kernels.get(gpu.id) or self.derived_kernels.get(gpu.id)
        if profile is None:
            raise PlannerError(f"the catalog at {self.root} has no kernel constants (hardware/kernels/*.yaml)")
        return profile

    def engine(self, name: str) -> EngineSpec:
        if not isinstance(name, str) or not name.strip():
            raise PlannerError(f"give an engine id ({', '.join(sorted(self.engines))}), got {name!r}", "engine")
        if not self.engines:
            raise PlannerError(f"the catalog at {self.root} has no engine profiles (hardware/engines/*.yaml)")
        try:
            return self._resolve(name, self.engines, "engine", f"choose one of {', '.join(sorted(self.engines))}")
        except PlannerError as err:
            raise PlannerError(err.problem, "engine") from None

    def deployment(
        self,
        model: ModelSpec,
        cluster: Cluster,
        tp_size: int,
        pp_size: int,
        dtype: Dtype,
        kv_dtype: Dtype,
        engine: EngineSpec,
    ) -> Deployment:
        """A configuration with its GPU's kernel constants and its engine's fitted constants attached."""
        return Deployment(
            model=model,
            cluster=cluster,
            tp_size=tp_size,
            pp_size=pp_size,
            dtype=dtype,
            kv_dtype=kv_dtype,
            engine=engine,
            kernels=self.kernel_profile(cluster.gpu.id),
            calibration=self.calibration(engine.id).constants,
        )

    def calibration(self, engine_id: str) -> CalibrationProfile:
        if engine_id not in self.calibrations:
            raise PlannerError(f"engine '{engine_id}' has no calibration: run `tdplan calibrate`")
        return self.calibrations[engine_id]

    def model(self, name: str) -> ModelSpec:
        """Look a model up by id or alias, or load a Hugging Face config.json (or a folder holding one)."""
        if not isinstance(name, str) or not name.strip():
            raise PlannerError(
                f"give a model id or alias (see `tdplan models list`) or a config.json, got {name!r}", "model"
            )
        path = Path(name).expanduser()
        if name.endswith(".json") or path.is_dir() or (path.exists() and path.is_file()):
            return load_hf_model(path)
        return self._resolve(name, self.models, "model", "see `tdplan models list`")

    def _resolve(self, name: str, table: Mapping[str, T], what: str, otherwise: str) -> T:
        key = _normalise(name)
        names: dict[str, str] = {}
        for entry_id, entry in table.items():
            for alias in (entry_id, *getattr(entry, "aliases", ())):
                names[_normalise(alias)] = entry_id
        if key in names:
            return table[names[key]]
        close = difflib.get_close_matches(key, list(names), n=4, cutoff=0.5)
        hint = f"closest: {', '.join(close)}" if close else otherwise
        raise PlannerError(f"unknown {what} '{name}' ({hint})")


def load_hf_model(path: Path) -> ModelSpec:
    """Read a Hugging Face config.json (or the config.json inside a folder) into a ModelSpec."""
    file = path / "config.json" if path.is_dir() else path
    if path.is_dir() and not file.exists():
        raise PlannerError(
            f"no config.json in the folder {path}: point it at a config.json or a folder holding one", "model"
        )
    text = read_text(file, "model", "config.json", MAX_CONFIG_BYTES)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlannerError(f"malformed JSON in {file} (line {err.lineno}): {err.msg}", "model") from None
    if not isinstance(config, dict):
        raise PlannerError(f"{file} does not hold a JSON object: it is not a Hugging Face config.json", "model")
    if isinstance(config.get("text_config"), dict) and "hidden_size" not in config:
        config = {**config["text_config"], "model_type": config["text_config"].get("model_type", "")}
    name = file.parent.name if file.name == "config.json" else file.stem
    try:
        return model_from_hf_config(config, id=name, name=name, source=str(file))
    except PlannerError as err:
        raise PlannerError(f"{file}: {err.problem}", "model") from None


def _check_names_unique(entries: Mapping[str, Any], folder: Path) -> None:
    """PlannerError when an id or alias of one catalog entry also names another (it would shadow it)."""
    owner: dict[str, str] = {}
    for entry_id, entry in entries.items():
        for alias in (entry_id, *getattr(entry, "aliases", ())):
            key = _normalise(alias)
            if owner.setdefault(key, entry_id) != entry_id:
                raise PlannerError(
                    f"{folder}: '{alias}' names both {owner[key]} and {entry_id}: "
                    f"remove it from one of {owner[key]}.yaml, {entry_id}.yaml"
                )


@functools.cache
def _load(root: Path) -> Catalog:
    hardware, models = root / "hardware", root / "models"
    if not hardware.is_dir() or not models.is_dir():
        raise PlannerError(f"no catalog at {root}: expected hardware/ and models/ folders there", "catalog")
    gpus = {}
    for path in sorted((hardware / "gpus").glob("*.yaml")):
        gpu = _validate(GpuSpec, _read_yaml(path), path)
        if gpu.id != path.stem:
            raise PlannerError(f"{path}: id '{gpu.id}' differs from the file name: name the file {gpu.id}.yaml")
        gpus[gpu.id] = gpu
    engines = {}
    for path in sorted((hardware / "engines").glob("*.yaml")):
        engine = _validate(EngineSpec, _read_yaml(path), path)
        engines[engine.id] = engine
    calibrations = {}
    for path in sorted((hardware / "calibration").glob("*.yaml")):
        profile = _validate(CalibrationProfile, _read_yaml(path), path)
        calibrations[profile.engine] = profile
    kernels = _load_kernels(hardware / "kernels", gpus)
    unmeasured = {g: spec for g, spec in gpus.items() if g not in kernels} if kernels else {}
    derived = {g: derive_kernel_profile(spec, kernels, gpus) for g, spec in unmeasured.items()}
    model_specs = {}
    for path in sorted(models.glob("*.yaml")):
        entry = _validate(ModelEntry, _read_yaml(path), path)
        if entry.id != path.stem:
            raise PlannerError(f"{path}: id '{entry.id}' differs from the file name: name the file {entry.id}.yaml")
        try:
            model_specs[entry.id] = entry.to_spec()
        except PlannerError as err:
            raise PlannerError(f"{path}: {err.problem}") from None
    _check_names_unique(gpus, hardware / "gpus")
    _check_names_unique(engines, hardware / "engines")
    _check_names_unique(model_specs, models)
    return Catalog(
        root=root,
        gpus=gpus,
        models=model_specs,
        engines=engines,
        calibrations=calibrations,
        kernels=kernels,
        derived_kernels=derived,
    )


def _load_kernels(folder: Path, gpus: Mapping[str, GpuSpec]) -> dict[str, KernelProfile]:
    """Measured kernel profiles, one file per catalog GPU named after it."""
    kernels = {}
    for path in sorted(folder.glob("*.yaml")):
        profile = _validate(KernelProfile, _read_yaml(path), path)
        if profile.gpu != path.stem:
            fix = f"name the file {profile.gpu}.yaml"
            raise PlannerError(f"{path}: gpu '{profile.gpu}' differs from the file name: {fix}")
        if profile.gpu not in gpus:
            raise PlannerError(
                f"{path}: gpu '{profile.gpu}' is not in the GPU catalog: add hardware/gpus/{profile.gpu}.yaml "
                "or use a catalog GPU id"
            )
        kernels[profile.gpu] = profile
    return kernels


def load_catalog(root: Path | str | None = None) -> Catalog:
    """Load (once per root) the GPU, engine and model catalogs under `root` (default: the shipped ones)."""
    return _load(Path(root).resolve() if root is not None else default_root())
