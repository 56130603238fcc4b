import ArgumentParser
import BasinNN
import Foundation

/// `basin example NAME`: writes a runnable spec on built-in data.
struct ExampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "example",
        abstract: "Write a runnable example spec (\(Examples.all.keys.sorted().joined(separator: ", ")))."
    )

    @Argument(help: "Example name.")
    var name: String

    @Option(name: .shortAndLong, help: "File to write (default: print to standard output).")
    var output: String?

    func validate() throws {
        guard Examples.all[name] != nil else {
            throw ValidationError(
                "unknown example '\(name)' (known: \(Examples.all.keys.sorted().joined(separator: ", ")))")
        }
    }

    func run() throws {
        let text = Examples.all[name]!
        if let output {
            try AtomicFile.write(Data(text.utf8), to: URL(fileURLWithPath: output))
        } else {
            print(text, terminator: "")
        }
    }
}

/// The example specs, as text users can read and edit.
enum Examples {
    static let all: [String: String] = [
        "spirals": """
        # Two interleaved spirals, a 2-64-64-2 MLP trained with SGD + momentum.
        model:
          input: [2]
          layers:
            - {type: linear, out_features: 64}
            - relu
            - {type: linear, out_features: 64}
            - relu
            - {type: linear, out_features: 2}
        data:
          source: spirals
          samples: 2000
          noise: 0.05
          test_fraction: 0.2
          seed: 0
        train:
          optimizer: sgd
          lr: 0.1
          momentum: 0.9
          nesterov: true
          weight_decay: 0.0001
          schedule: cosine
          epochs: 40
          batch_size: 64
          seed: 0

        """,
        "connectivity": """
        # A multi-seed mode-connectivity study in one command (basin run connectivity.yaml --out run):
        # 3 seeds x 2 learning rates of a 2-32-32-2 MLP on spirals; every pair of seeds in a cell
        # connected by a straight line, by the line after weight matching (Git Re-Basin) and by a
        # fitted Bezier curve (Garipov et al.); a surface and the Hessian's top eigenvalue and trace
        # around every model; summary.csv with barriers per pair and mean ± std per cell.
        model:
          input: [2]
          layers:
            - {type: linear, out_features: 32}
            - relu
            - {type: linear, out_features: 32}
            - relu
            - {type: linear, out_features: 2}
        data:
          source: spirals
          samples: 1000
          noise: 0.05
          test_fraction: 0.2
          seed: 0
        train:
          optimizer: sgd
          momentum: 0.9
          schedule: cosine
          epochs: 30
          batch_size: 64
        stages:
          train: {seeds: [0, 1, 2], grid: {lr: [0.05, 0.2]}}
          connect:
            t: "0:1:21"
            align: true
            curve: {kind: bezier, bends: 1, epochs: 20, lr: 0.05}
          surface: {x: "-1:1:21", y: "-1:1:21"}
          hessian: {iterations: 50, tolerance: 0.001, probes: 20}
        sweep:
          shard_seconds: 2

        """,
        "digits": """
        # The first study to try on real data: scikit-learn's handwritten digits (8x8 images,
        # 10 classes), exported once with `.venv/bin/python scripts/digits-export digits` next to this file.
        # A small CNN, 3 seeds x 2 learning rates; lines, aligned lines and curves between every
        # pair of seeds; sharpness and a surface around each model; summary.csv.
        #   basin run digits.yaml --out digits-run --workers 2
        model:
          input: [1, 8, 8]
          layers:
            - {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
            - relu
            - {type: maxpool2d, kernel_size: 2}
            - flatten
            - {type: linear, out_features: 64}
            - relu
            - {type: linear, out_features: 10}
        data:
          source: files
          train: {features: digits/features.npy, labels: digits/labels.npy}
          shape: [1, 8, 8]
          test_fraction: 0.25
          seed: 0
        train:
          optimizer: sgd
          momentum: 0.9
          schedule: cosine
          epochs: 30
          batch_size: 64
        stages:
          train: {seeds: [0, 1, 2], grid: {lr: [0.02, 0.1]}}
          connect:
            t: "0:1:21"
            align: true
            curve: {kind: bezier, bends: 1, epochs: 20, lr: 0.02}
          surface: {x: "-1:1:21", y: "-1:1:21"}
          hessian: {iterations: 50, tolerance: 0.001, probes: 20}
        sweep:
          shard_seconds: 2

        """,
        "resnet20": """
        # ResNet-20 (He et al.'s CIFAR ResNet, width 16, as Li et al. map it): a connectivity study of
        # two seeds: the straight line between them, the line after weight matching (Git Re-Basin),
        # a fitted Bezier curve (Garipov et al.), a surface around each seed and its sharpness.
        # On cifar-synthetic (CIFAR's shapes, a learnable signal) it runs in about 8 minutes on two cores:
        #   basin run resnet20.yaml --out resnet20-run --workers 2
        # On real CIFAR-10 (the binary version, from https://www.cs.toronto.edu/~kriz/cifar.html):
        #   data: {source: cifar10, path: cifar-10-batches-bin}
        # and more epochs (the papers train 200 to 300) and finer grids.
        model:
          input: [3, 32, 32]
          layers:
            - {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, bias: false}
            - batchnorm2d
            - relu
            - &block16
              type: residual
              body:
                - {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, bias: false}
                - batchnorm2d
                - relu
                - {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1, bias: false}
                - batchnorm2d
            - relu
            - *block16
            - relu
            - *block16
            - relu
            - type: residual
              body:
                - {type: conv2d, out_channels: 32, kernel_size: 3, stride: 2, padding: 1, bias: false}
                - batchnorm2d
                - relu
                - {type: conv2d, out_channels: 32, kernel_size: 3, padding: 1, bias: false}
                - batchnorm2d
              shortcut:
                - {type: conv2d, out_channels: 32, kernel_size: 1, stride: 2, bias: false}
                - batchnorm2d
            - relu
            - &block32
              type: residual
              body:
                - {type: conv2d, out_channels: 32, kernel_size: 3, padding: 1, bias: false}
                - batchnorm2d
                - relu
                - {type: conv2d, out_channels: 32, kernel_size: 3, padding: 1, bias: false}
                - batchnorm2d
            - relu
            - *block32
            - relu
            - type: residual
              body:
                - {type: conv2d, out_channels: 64, kernel_size: 3, stride: 2, padding: 1, bias: false}
                - batchnorm2d
                - relu
                - {type: conv2d, out_channels: 64, kernel_size: 3, padding: 1, bias: false}
                - batchnorm2d
              shortcut:
                - {type: conv2d, out_channels: 64, kernel_size: 1, stride: 2, bias: false}
                - batchnorm2d
            - relu
            - &block64
              type: residual
              body:
                - {type: conv2d, out_channels: 64, kernel_size: 3, padding: 1, bias: false}
                - batchnorm2d
                - relu
                - {type: conv2d, out_channels: 64, kernel_size: 3, padding: 1, bias: false}
                - batchnorm2d
            - relu
            - *block64
            - relu
            - {type: adaptive_avgpool2d, output_size: 1}
            - flatten
            - {type: linear, out_features: 10}
        data:
          source: cifar-synthetic
          samples: 1200
          test_fraction: 0.2
          seed: 0
        train:
          optimizer: sgd
          lr: 0.05
          momentum: 0.9
          weight_decay: 0.0005
          schedule: garipov
          epochs: 4
          batch_size: 64
        stages:
          train: {seeds: [0, 1]}
          connect:
            t: "0:1:9"
            align: true
            # BatchNorm statistics re-estimated at every point of the lines and the curve, as
            # Garipov et al. and Git Re-Basin evaluate them: with eval-mode statistics averaged
            # between two networks, the line and the aligned line both collapse and compare badly.
            bn: recompute
            curve: {kind: bezier, bends: 1, epochs: 2, lr: 0.02}
          surface: {x: "-1:1:7", y: "-1:1:7"}
          hessian: {iterations: 20, tolerance: 0.01, probes: 5}
        sweep:
          shard_seconds: 5

        """,
        "sweep": """
        # A study for `basin run`: landscapes around spirals models trained with the 'spirals'
        # example (basin train spirals.yaml -o seed0.safetensors --seed 0 --snapshots snapshots,
        # and seeds 1 and 2), and a curve fitted by `basin curve ... --save-curve curve.safetensors`.
        model:
          input: [2]
          layers:
            - {type: linear, out_features: 64}
            - relu
            - {type: linear, out_features: 64}
            - relu
            - {type: linear, out_features: 2}
        data:
          source: spirals
          samples: 2000
          noise: 0.05
          test_fraction: 0.2
          seed: 0
        jobs:
          - surface: {checkpoint: seed0.safetensors, x: "-1:1:41", y: "-1:1:41", norm: filter, ignore: biasbn}
          - surface: {name: trajectory, checkpoint: seed0.safetensors, trajectory: snapshots, x: "-2:8:31", y: "-3:3:31"}
          - interpolate: {from: seed0.safetensors, to: seed1.safetensors, t: "-0.25:1.25:61"}
          - plane: {models: [seed0.safetensors, seed1.safetensors, seed2.safetensors], basis: raw, x: "-0.5:1.5:31", y: "-0.5:1.5:31"}
          - curve: {file: curve.safetensors, t: "0:1:41"}
        sweep:
          shard_seconds: 2

        """,
        "cnn": """
        # Gaussian blobs shown as 1x8x8 images, a small CNN with BatchNorm and Dropout trained with AdamW.
        model:
          input: [1, 8, 8]
          layers:
            - {type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
            - {type: batchnorm2d}
            - relu
            - {type: maxpool2d, kernel_size: 2}
            - {type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
            - relu
            - {type: avgpool2d, kernel_size: 2}
            - flatten
            - {type: dropout, p: 0.1}
            - {type: linear, out_features: 4}
        data:
          source: blobs
          samples: 2000
          features: 64
          classes: 4
          spread: 0.5
          noise: 1.0
          shape: [1, 8, 8]
          seed: 1
        train:
          optimizer: adamw
          lr: 0.003
          weight_decay: 0.01
          schedule: {type: step, step_size: 5, gamma: 0.5}
          epochs: 10
          batch_size: 32
          seed: 0

        """,
    ]
}
