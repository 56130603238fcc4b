/// Training-time augmentation of image samples as the CIFAR papers train: a random
/// `size`×`size` crop of the image padded by `padding` on every side (torchvision's
/// `RandomCrop(32, padding=4)`), then a horizontal flip with probability ½
/// (`RandomHorizontalFlip`). Each sample's draw comes from the counter RNG keyed by
/// (seed, epoch, sample index), so an epoch's images are the same on any machine, in any order.
public struct Augmentation: Sendable, Equatable {
    public var padding: Int
    public var flip: Bool
    /// Per channel, the value a padded (black, 0) pixel has after normalization.
    public var fill: [Float]

    public init(padding: Int = 4, flip: Bool = true, fill: [Float]) {
        self.padding = padding
        self.flip = flip
        self.fill = fill
    }

    /// Writes sample `index`'s augmented copy of `source` (`[C, H, W]`) into `target`.
    func apply(
        _ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, shape: [Int], index: Int,
        seed: UInt64, epoch: Int
    ) {
        let c = shape[0], h = shape[1], w = shape[2]
        var random = RandomSource(
            seed: seed, stream: RandomStream.augmentation.id(epoch), offset: UInt64(truncatingIfNeeded: index) << 8)
        let top = random.nextInt(below: 2 * padding + 1) - padding
        let left = random.nextInt(below: 2 * padding + 1) - padding
        let mirrored = flip && random.nextUInt32() & 1 == 1
        for ch in 0..<c {
            let fill = ch < self.fill.count ? self.fill[ch] : 0
            let plane = source + ch * h * w, out = target + ch * h * w
            for y in 0..<h {
                let sy = y + top
                let row = out + y * w
                guard sy >= 0, sy < h else {
                    row.update(repeating: fill, count: w)
                    continue
                }
                for x in 0..<w {
                    // Flip after the crop: output column x reads cropped column w − 1 − x.
                    let sx = (mirrored ? w - 1 - x : x) + left
                    row[x] = sx >= 0 && sx < w ? plane[sy * w + sx] : fill
                }
            }
        }
    }
}
