/// The linear assignment problem: a permutation π maximizing Σᵢ score[i][π(i)].
///
/// Shortest augmenting paths with potentials (the Hungarian method in its O(n³) form, as in
/// Jonker–Volgenant): exact, deterministic (ties go to the lowest index).
public enum LinearAssignment {
    /// `score` is n×n, row-major. Returns π with π[i] the column given to row i.
    public static func maximize(_ score: [Double], n: Int) -> [Int] {
        precondition(score.count == n * n)
        if n == 0 { return [] }
        // Minimize cost = −score, with 1-based arrays and a virtual column 0.
        var u = [Double](repeating: 0, count: n + 1), v = [Double](repeating: 0, count: n + 1)
        var match = [Int](repeating: 0, count: n + 1)  // column j → row (1-based), 0 = free
        var way = [Int](repeating: 0, count: n + 1)
        for row in 1...n {
            match[0] = row
            var column = 0
            var minimum = [Double](repeating: .infinity, count: n + 1)
            var used = [Bool](repeating: false, count: n + 1)
            repeat {
                used[column] = true
                let i = match[column]
                var delta = Double.infinity, next = 0
                for j in 1...n where !used[j] {
                    let reduced = -score[(i - 1) * n + (j - 1)] - u[i] - v[j]
                    if reduced < minimum[j] {
                        minimum[j] = reduced
                        way[j] = column
                    }
                    if minimum[j] < delta {
                        delta = minimum[j]
                        next = j
                    }
                }
                for j in 0...n {
                    if used[j] {
                        u[match[j]] += delta
                        v[j] -= delta
                    } else {
                        minimum[j] -= delta
                    }
                }
                column = next
            } while match[column] != 0
            repeat {
                let previous = way[column]
                match[column] = match[previous]
                column = previous
            } while column != 0
        }
        var assignment = [Int](repeating: 0, count: n)
        for j in 1...n where match[j] > 0 { assignment[match[j] - 1] = j - 1 }
        return assignment
    }
}
