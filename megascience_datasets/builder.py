"""The `datasets` builder: one BuilderConfig per catalogue entry, shards read as Arrow tables.

It subclasses the packaged Parquet builder (an ArrowBasedBuilder): record batches go to the Arrow
writer without a Python dict per row, columns/filters are pushed down into pyarrow, and streaming
shards per file (or per row group after `reshard()`). benchmarks/loader.py measures it against a
GeneratorBasedBuilder over the same shards.

The builder is given verified files by `megascience_datasets.load_dataset`; instantiate it directly only
with `data_files` you have checked yourself.
"""
from __future__ import annotations

from dataclasses import dataclass

import datasets
from datasets.data_files import DataFilesDict, DataFilesList
from datasets.iterable_dataset import ArrowExamplesIterable
from datasets.packaged_modules.parquet.parquet import Parquet, ParquetConfig

from . import derive as _derive
from .catalogue import load_catalogue

BUILDER_NAME = "megascience"
VERSION = datasets.Version("1.0.0")
HOMEPAGE = "https://arxiv.org/abs/2507.16812"


@dataclass
class MegascienceConfig(ParquetConfig):
    """A catalogue configuration. `revision_sha` is informative; the cache is keyed by the builder `hash`."""
    license: str | None = None
    citation: str | None = None


def _configs() -> list[MegascienceConfig]:
    return [MegascienceConfig(name=e.name, version=VERSION, description=e.description, features=e.hf_features(),
                              license=e.license, citation=e.citation)
            for e in load_catalogue()]


class TypedArrowExamplesIterable(ArrowExamplesIterable):
    """Arrow tables that already carry the builder's features (Parquet._cast_table casts every table).

    Declaring them lets IterableDataset skip its per-row re-formatting (a one-row Arrow table cast and
    converted for every example), which made streaming ~5x slower than pyarrow's own row conversion.
    Sharding, shuffling and resharding keep the declaration.
    """

    def __init__(self, *args, features: datasets.Features | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._typed_features = features

    @property
    def features(self):
        return self._typed_features

    def _retype(self, it: ArrowExamplesIterable) -> "TypedArrowExamplesIterable":
        out = TypedArrowExamplesIterable(it.generate_tables_fn, it.kwargs, it.generate_more_kwargs_fn,
                                         features=self._typed_features)
        out._sleep_on_threads_shutdown = self._sleep_on_threads_shutdown
        return out

    def shuffle_data_sources(self, generator):
        return self._retype(super().shuffle_data_sources(generator))

    def shard_data_sources(self, num_shards: int, index: int, contiguous=True):
        return self._retype(super().shard_data_sources(num_shards, index, contiguous=contiguous))

    def reshard_data_sources(self):
        return self._retype(super().reshard_data_sources())


class Megascience(Parquet):
    BUILDER_CONFIG_CLASS = MegascienceConfig
    BUILDER_CONFIGS = _configs()
    DEFAULT_CONFIG_NAME = "textbook"

    def _info(self):
        info = super()._info()
        info.description = self.config.description or ""
        info.citation = self.config.citation or ""
        info.license = self.config.license or ""
        info.homepage = HOMEPAGE
        return info

    def _get_examples_iterable_for_split(self, split_generator):
        return TypedArrowExamplesIterable(self._generate_tables, kwargs=split_generator.gen_kwargs,
                                          generate_more_kwargs_fn=getattr(self, "_generate_more_gen_kwargs", None),
                                          sleep_on_threads_shutdown=self.SLEEP_ON_THREADS_SHUTDOWNS,
                                          features=self.info.features)


def data_files_dict(files: list[str], split: str = "train") -> DataFilesDict:
    return DataFilesDict({split: DataFilesList(list(files), [("", "")] * len(files))})


def make_builder(name: str, files: list[str], sha: str, *, cache_dir=None, columns=None, filters=None,
                 batch_size: int | None = None) -> Megascience:
    """A builder for verified `files` of configuration `name` at data commit `sha` (its cache key)."""
    kwargs = {}
    if columns is not None:
        kwargs["columns"] = list(columns)
    if filters is not None:
        kwargs["filters"] = filters
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    return Megascience(config_name=name, dataset_name=BUILDER_NAME, hash=sha, cache_dir=cache_dir,
                       data_files=data_files_dict(files), **kwargs)


class DerivedMegascience(Megascience):
    """A configuration derived on this machine from its parent's verified shards (derive.py).

    `data_files` are the parent's shards; `plan` says which rows of each are kept. Rows are read row group by
    row group, so streaming, `download_and_prepare` and every shard of `split_dataset_by_node` apply the
    same mask to the same rows."""

    def __init__(self, *args, plan=None, **kwargs):
        self._plan = plan
        super().__init__(*args, **kwargs)

    def _generate_tables(self, files, row_groups_list):
        from datasets.builder import Key
        names = list(self.info.features)
        for k, g, table in _derive.iter_derived(self._plan, files, row_groups_list):
            yield Key(k, g), self._cast_table(table.select(names))


def make_derived_builder(plan, *, cache_dir=None, columns=None, batch_size: int | None = None) -> DerivedMegascience:
    kwargs = {}
    if columns is not None:
        kwargs["columns"] = list(columns)
    return DerivedMegascience(config_name=plan.config, dataset_name=BUILDER_NAME, hash=plan.cache_hash(),
                              cache_dir=cache_dir, data_files=data_files_dict(plan.files), plan=plan, **kwargs)
