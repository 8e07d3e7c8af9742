from setuptools import find_packages, setup

setup(
    name="autospec",
    version="0.1.0",
    description="Gradient spectra of every layer during training, per group of samples, "
                "on a from-scratch NumPy/CuPy autodiff engine (minigrad)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["minigrad", "minigrad.*", "autospec", "autospec.*", "models", "models.*"]),
    package_data={"autospec": ["configs/*.toml"]},
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.11",
        "matplotlib>=3.7",
        "h5py>=3.8",          # records, appended per step (issue 4)
        "scikit-learn>=1.2",  # bundled handwritten digits, the offline MNIST stand-in
        "nibabel>=5.0",       # NIfTI loaders for real neuroimaging data
        "tqdm>=4.60",         # progress bars on long runs and sweeps
        "threadpoolctl>=3",   # one thread setting for BLAS and minigrad's pool (mg.set_num_threads)
        "tomli>=2.0; python_version<'3.11'",
    ],
    extras_require={
        "gpu": ["cupy-cuda12x>=13"],
        "dask": ["dask[distributed]>=2023.1"],
        "tables": ["pandas>=2.0"],  # Record.to_dataframe()
        "test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6", "nbmake>=1.4", "ipykernel>=6", "dask[distributed]>=2023.1",
                 "pandas>=2.0"],
    },
    entry_points={"console_scripts": ["autospec=autospec.cli:main"]},
)
