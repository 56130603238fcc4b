import BasinNN
import BasinTestSupport
import Foundation
import Testing

/// Convolution forward passes (Winograd for stride-1 3×3 layers of 8 or more input channels:
/// through the AVX2 kernels where the processor and shape allow, F(4×4, 3×3) for 8 images or more
/// and F(2×2, 3×3) below, else F(2×2, 3×3) on OpenBLAS; direct for the rest, AVX2 or im2col +
/// sgemm) against the definition summed in Double.
@Suite struct ConvolutionTests {
    struct Shape: Sendable, CustomStringConvertible {
        var inChannels, outChannels, size, kernel, stride, padding, batch: Int
        var bias: Bool
        var description: String {
            "\(inChannels)->\(outChannels) k\(kernel) s\(stride) p\(padding) at \(size)x\(size), batch \(batch)\(bias ? ", bias" : "")"
        }
    }

    static let shapes: [Shape] = [
        Shape(inChannels: 16, outChannels: 16, size: 32, kernel: 3, stride: 1, padding: 1, batch: 3, bias: false),
        // Odd output sizes (partial tiles), no padding, wider padding, bias.
        Shape(inChannels: 8, outChannels: 12, size: 9, kernel: 3, stride: 1, padding: 1, batch: 2, bias: true),
        Shape(inChannels: 9, outChannels: 5, size: 10, kernel: 3, stride: 1, padding: 0, batch: 2, bias: true),
        Shape(inChannels: 8, outChannels: 8, size: 7, kernel: 3, stride: 1, padding: 2, batch: 2, bias: false),
        // More images than one Winograd group (8 channels at 32×32: 16 images a group, the last
        // one shorter), and 130 images at 8×8.
        Shape(inChannels: 8, outChannels: 8, size: 32, kernel: 3, stride: 1, padding: 1, batch: 18, bias: true),
        Shape(inChannels: 8, outChannels: 4, size: 8, kernel: 3, stride: 1, padding: 1, batch: 130, bias: true),
        // The AVX2 kernels' blocks of tiles crossing images, with a partial last column of 24
        // tiles: 16->32 at 16x16 (48-tile blocks) and 64->64 at 8x8 (tile rows of 4).
        Shape(inChannels: 16, outChannels: 32, size: 16, kernel: 3, stride: 1, padding: 1, batch: 5, bias: true),
        Shape(inChannels: 64, outChannels: 64, size: 8, kernel: 3, stride: 1, padding: 1, batch: 7, bias: false),
        // F(4×4, 3×3), 8 images to a vector: a last group of 3 images, 64 channels at 8×8.
        Shape(inChannels: 16, outChannels: 16, size: 32, kernel: 3, stride: 1, padding: 1, batch: 11, bias: true),
        Shape(inChannels: 64, outChannels: 64, size: 8, kernel: 3, stride: 1, padding: 1, batch: 9, bias: false),
        // The im2col path: few input channels, stride 2, 1×1.
        Shape(inChannels: 3, outChannels: 16, size: 11, kernel: 3, stride: 1, padding: 1, batch: 2, bias: true),
        Shape(inChannels: 16, outChannels: 32, size: 16, kernel: 3, stride: 2, padding: 1, batch: 2, bias: false),
        Shape(inChannels: 16, outChannels: 32, size: 16, kernel: 1, stride: 2, padding: 0, batch: 2, bias: false),
        // The AVX2 direct kernel (output widths of 8): a ResNet's first layer, strided layers
        // whose blocks of 24 positions cross rows and images, an odd input width.
        Shape(inChannels: 3, outChannels: 16, size: 32, kernel: 3, stride: 1, padding: 1, batch: 3, bias: true),
        Shape(inChannels: 16, outChannels: 32, size: 32, kernel: 3, stride: 2, padding: 1, batch: 3, bias: false),
        Shape(inChannels: 32, outChannels: 64, size: 16, kernel: 1, stride: 2, padding: 0, batch: 5, bias: true),
        Shape(inChannels: 5, outChannels: 8, size: 15, kernel: 3, stride: 2, padding: 1, batch: 3, bias: true),
    ]

    @Test(arguments: shapes)
    func forwardMatchesTheDefinition(_ shape: Shape) throws {
        let network = try Network(
            ModelDescription(
                input: [shape.inChannels, shape.size, shape.size],
                layers: [
                    .conv2d(
                        inChannels: nil, outChannels: shape.outChannels, kernel: .init(shape.kernel),
                        stride: .init(shape.stride), padding: .init(shape.padding), bias: shape.bias)
                ]))
        let model = network.initialize(seed: 5)
        let input = TestSupport.gaussian(shape.batch * network.inputSize, seed: 6)
        let workspace = Workspace(network: network, capacity: shape.batch, backward: false)
        input.withUnsafeBufferPointer { model.infer($0.baseAddress!, batch: shape.batch, workspace: workspace) }
        let output = Array(workspace.output(batch: shape.batch))
        let (cin, cout, n, k) = (shape.inChannels, shape.outChannels, shape.size, shape.kernel)
        let on = (n + 2 * shape.padding - k) / shape.stride + 1
        #expect(output.count == shape.batch * cout * on * on)
        var worst = 0.0
        for b in 0..<shape.batch {
            for o in 0..<cout {
                for y in 0..<on {
                    for x in 0..<on {
                        var sum = shape.bias ? Double(model.parameters[cout * cin * k * k + o]) : 0,
                            magnitude = abs(sum)
                        for c in 0..<cin {
                            for i in 0..<k {
                                for j in 0..<k {
                                    let iy = y * shape.stride - shape.padding + i,
                                        ix = x * shape.stride - shape.padding + j
                                    guard iy >= 0, iy < n, ix >= 0, ix < n else { continue }
                                    let term =
                                        Double(model.parameters[((o * cin + c) * k + i) * k + j])
                                        * Double(input[((b * cin + c) * n + iy) * n + ix])
                                    sum += term
                                    magnitude += abs(term)
                                }
                            }
                        }
                        let got = Double(output[((b * cout + o) * on + y) * on + x])
                        worst = max(worst, abs(got - sum) / max(magnitude, 1e-30))
                    }
                }
            }
        }
        #expect(worst < 1e-5, "\(shape): worst relative error \(worst)")
    }
}
