import Foundation

/// Reading datasets from `.npy`, IDX and CSV files.
enum DataFiles {
    static func load(
        _ files: DataSpec.Files, relativeTo base: URL, field: String, locate: (String) -> URL? = { _ in nil }
    ) throws -> Dataset {
        func url(_ path: String) -> URL {
            locate(path) ?? (path.hasPrefix("/") ? URL(fileURLWithPath: path) : base.appendingPathComponent(path))
        }
        if let csv = files.csv {
            return try readCSV(url(csv), labelColumn: files.labelColumn ?? -1)
        }
        guard let featuresPath = files.features, let labelsPath = files.labels else {
            throw SpecError(field, "give 'features' and 'labels' files, or a 'csv' file")
        }
        let features = try readArray(url(featuresPath))
        let labels = try readArray(url(labelsPath))
        guard let values = features.floats(), !features.shape.isEmpty else {
            throw NNError("\(url(featuresPath).path): features must be a numeric array with a sample dimension")
        }
        let count = features.shape[0]
        guard count > 0 else { throw NNError("\(url(featuresPath).path): the features have no rows") }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw NNError(
                "\(url(featuresPath).path): feature \(bad) (row \(bad / max(1, values.count / count))) is \(values[bad]); features must be finite")
        }
        guard labels.shape.first == count else {
            throw NNError("\(url(labelsPath).path): \(labels.shape.first ?? 0) labels for \(count) feature rows")
        }
        let sampleShape = features.shape.count == 1 ? [1] : Array(features.shape.dropFirst())
        if let integers = labels.integers() {
            guard labels.shape.count == 1 else {
                throw NNError(
                    "\(url(labelsPath).path): integer labels must be one-dimensional, got shape \(labels.shape)")
            }
            guard integers.allSatisfy({ $0 >= 0 && $0 <= Int64(Int32.max) }) else {
                throw NNError("\(url(labelsPath).path): class labels must be non-negative integers")
            }
            return Dataset(sampleShape: sampleShape, features: values, labels: integers.map { Int32($0) })
        }
        guard let targets = labels.floats() else {
            throw NNError("\(url(labelsPath).path): labels of dtype \(labels.dtype.rawValue) are not supported")
        }
        if let bad = targets.firstIndex(where: { !$0.isFinite }) {
            throw NNError("\(url(labelsPath).path): target \(bad) is \(targets[bad]); targets must be finite")
        }
        let width = labels.shape.dropFirst().reduce(1, *)
        return Dataset(sampleShape: sampleShape, features: values, targets: targets, targetSize: width)
    }

    /// A `.npy` or IDX file, told apart by its first bytes.
    static func readArray(_ url: URL) throws -> TensorData {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw NNError("\(url.path): cannot open the file")
        }
        let magic = handle.readData(ofLength: 2)
        try? handle.close()
        if magic.first == 0x93 { return try NpyArray(contentsOf: url).tensor }
        return try Idx.read(contentsOf: url)
    }

    /// Numeric CSV: an optional header row (detected when its fields are not numbers), one
    /// sample per row, the label in `labelColumn`. Integer labels make a classification set.
    static func readCSV(_ url: URL, labelColumn: Int) throws -> Dataset {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw NNError("\(url.path): cannot read the file (\(error.localizedDescription))")
        }
        var rows: [[Double]] = []
        var width: Int?
        for (lineIndex, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
        {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            let numbers = fields.map { Double($0) }
            if numbers.contains(where: { $0 == nil }) {
                if rows.isEmpty && width == nil {
                    width = fields.count
                    continue
                }
                throw NNError("\(url.path): line \(lineIndex + 1) has a field that is not a number")
            }
            if let width, width != fields.count {
                throw NNError(
                    "\(url.path): line \(lineIndex + 1) has \(fields.count) fields but earlier lines have \(width)")
            }
            width = fields.count
            rows.append(numbers.map { $0! })
        }
        guard let width, !rows.isEmpty, width >= 2 else {
            throw NNError("\(url.path): no data rows with at least one feature and a label")
        }
        let column = labelColumn < 0 ? width + labelColumn : labelColumn
        guard column >= 0, column < width else {
            throw NNError("\(url.path): label_column \(labelColumn) is outside the \(width) columns")
        }
        var features: [Float] = []
        features.reserveCapacity(rows.count * (width - 1))
        var labels: [Double] = []
        for (i, row) in rows.enumerated() {
            if let bad = row.firstIndex(where: { !$0.isFinite || !Float($0).isFinite }) {
                throw NNError("\(url.path): row \(i + 1), column \(bad + 1) is \(row[bad]); values must be finite")
            }
            for (j, v) in row.enumerated() where j != column { features.append(Float(v)) }
            labels.append(row[column])
        }
        if labels.allSatisfy({ $0 >= 0 && $0 == $0.rounded() && $0 < Double(Int32.max) }) {
            return Dataset(sampleShape: [width - 1], features: features, labels: labels.map { Int32($0) })
        }
        return Dataset(sampleShape: [width - 1], features: features, targets: labels.map { Float($0) }, targetSize: 1)
    }

    static func reshape(_ data: inout Dataset, to shape: [Int], field: String) throws {
        guard shape.allSatisfy({ $0 > 0 }), shape.reduce(1, *) == data.sampleSize else {
            throw SpecError(field, "shape \(shape) does not hold samples of \(data.sampleSize) values")
        }
        data.sampleShape = shape
    }
}
