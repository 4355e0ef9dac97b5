import os

import pytest

GOLDEN_DIR = os.path.join(os.path.dirname(__file__), "golden")

# Strict dtype promotion (jax.numpy_dtype_promotion('strict')) for the whole test session: silent promotion is the
# enemy of bit-exactness, so a mixed-dtype jnp operation in the package fails a test instead of widening quietly.
# JAXPULP_STRICT_PROMOTION=0 pytest ... opts out (e.g. to tell a promotion error from a wrong result).
STRICT_PROMOTION = os.environ.get("JAXPULP_STRICT_PROMOTION", "1") != "0"
if STRICT_PROMOTION:
    import jax

    jax.config.update("jax_numpy_dtype_promotion", "strict")

# Markers are assigned here, by file and test name, so the test files stay as their owners wrote them.
# ``golden``: runs C-library golden vectors or exported networks' goldens (bit-exact, == only).
GOLDEN_FILES = {
    "test_add_golden.py", "test_conv_golden.py", "test_cost_golden.py", "test_depthwise_golden.py",
    "test_linear_golden.py", "test_pointwise_golden.py", "test_pool_golden.py", "test_network_external.py",
}
# ``slow``: the tests that together take most of the suite's time (measured with ``pytest --durations=0``; see
# the note of issue 9). ``pytest -m "not slow"`` is the inner loop; CI runs everything. Entries are
# "file::test name" (a parametrised test: every parameter) or "file" (the whole file).
SLOW = {
    "test_network_external.py::test_dory_and_nemo_networks_match_every_layer",
    "test_network_external.py::test_deeploy_networks_match_outputs_and_activations",
    "test_sweep.py::test_killed_sweep_resumes_with_nothing_lost_or_duplicated",
    "test_sweep.py::test_metric_rule_and_batching",
    "test_sweep.py::test_metric_with_labels_from_data_file",
    "test_sweep_sharding.py",
    "test_pool_golden.py::test_static_path_matches_golden_per_scenario",
    "test_pool_golden.py::test_batch_equals_loop",
    "test_pointwise_golden.py::test_bn_bits_64_tree",
    "test_pointwise_golden.py::test_static_path_matches_golden_cases_with_each_quirk",
    "test_linear_golden.py::test_batch_equals_loop",
    "test_packing.py::test_extract_elements_equals_unpack_with_traced_width",
    "test_quant.py::test_vectorised_equals_python_ints",
    "test_network.py::test_batch_equals_loop_and_one_compile_per_batch_size",
    "test_network.py::test_cli_run_report_check",
    "test_network.py::test_cli_run_reads_npy_input",
    "test_surrogate.py::test_gradients_match_finite_differences",
    "test_surrogate.py::test_expectation_over_the_whole_coupled_space",
    "test_fast_paths.py::test_add_static_equals_bucketed",
    "test_fast_paths.py::test_pointwise_static_equals_bucketed",
    "test_fast_paths.py::test_pool_static_equals_bucketed",
    "test_fast_paths.py::test_linear_static_equals_bucketed",
    # added with the QAT search, the fast network paths, the docs snippets and the deployment model
    "test_train.py",
    "test_train_export.py",
    "test_network_fast.py",
    "test_docs.py::test_snippets_run",
    "test_conv_api.py::test_random_configs_match_reference_twin",
    "test_deploy.py::test_tiles_fit_l1_bundled_networks",
}


@pytest.fixture(scope="session")
def golden_dir():
    return GOLDEN_DIR


def _slow(item) -> bool:
    fname = os.path.basename(str(item.path))
    name = getattr(item, "originalname", None) or item.name.split("[")[0]
    return fname in SLOW or f"{fname}::{name}" in SLOW


def pytest_collection_modifyitems(config, items):
    for item in items:
        if os.path.basename(str(item.path)) in GOLDEN_FILES:
            item.add_marker(pytest.mark.golden)
        if _slow(item):
            item.add_marker(pytest.mark.slow)
