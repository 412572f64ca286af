"""A training script as Azure ML's tutorials write it: MLflow autolog, params, metrics per
epoch, an artifact, and a nested run."""

import argparse
import os

import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main():
    parser = argparse.ArgumentParser("train")
    parser.add_argument("--data", type=str, help="path to input data")
    parser.add_argument("--test_train_ratio", type=float, required=False, default=0.25)
    parser.add_argument("--C", type=float, required=False, default=1.0)
    parser.add_argument("--epochs", type=int, required=False, default=3)
    args = parser.parse_args()

    mlflow.start_run()
    mlflow.sklearn.autolog()

    df = pd.read_csv(args.data)
    mlflow.log_metric("num_samples", df.shape[0])
    mlflow.log_metric("num_features", df.shape[1] - 1)
    mlflow.log_param("test_train_ratio", args.test_train_ratio)

    x = df[["sepal_length", "sepal_width"]]
    y = df["species"]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=args.test_train_ratio, random_state=0)
    for epoch in range(args.epochs):
        mlflow.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
    clf = LogisticRegression(C=args.C, max_iter=200)
    clf.fit(x_train, y_train)
    mlflow.log_metrics({"accuracy": float(clf.score(x_test, y_test)), "epochs_run": args.epochs})
    mlflow.set_tag("trained_by", "azure-tutorial")

    os.makedirs("report", exist_ok=True)
    with open("report/summary.txt", "w") as f:
        f.write(f"classes: {sorted(set(y))}\n")
    mlflow.log_artifact("report/summary.txt")

    with mlflow.start_run(run_name="fold-1", nested=True):
        mlflow.log_metric("accuracy", 0.5)
        mlflow.log_param("fold", 1)

    mlflow.end_run()


if __name__ == "__main__":
    main()
